"""What only development, the tests, the benchmarks and the demo need: local Kafka and Redis
(``streamnlp services``), a worker child process watched over HTTP, fresh topics to stream through.

A deployed worker never imports this package (a test checks it): it installs packages with apt-get and
resolves jars with Maven, which no production image should carry out.
"""
