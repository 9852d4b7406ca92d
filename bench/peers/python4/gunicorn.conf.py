# gunicorn settings of the story's stack peer: one eventlet worker, as the story ran it.
# bench/run.sh passes --bind 127.0.0.1:PORT; the port is printed as "LISTENING <port>" once the
# server accepts connections, as every peer of the benchmark does.
import sys

worker_class = "eventlet"
workers = 1
# gunicorn's default (1000) caps the connections of the one worker: the 1k-client cells need
# a few more (their warm-up clients, the sender).
worker_connections = 20000
backlog = 4096
accesslog = None
errorlog = "-"
loglevel = "warning"


def when_ready(server):
    for listener in server.LISTENERS:
        port = listener.sock.getsockname()[1]
        sys.stdout.write(f"LISTENING {port}\n")
        sys.stdout.flush()
