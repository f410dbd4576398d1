"""The shipped model directory, installed as package data of ``streamnlp.models``."""
