"""The app launched in this process as ``app.main`` launches it, for tests that call it the way a
gradio_client user does."""

import contextlib
import os
import socket

ENVIRONMENT = ("POSE2ID_CACHE", "GRADIO_SERVER_NAME", "GRADIO_SERVER_PORT")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def launched(root, argv=(), data=None, galleries=None):
    """Serve the app (tiny test pipeline) with its cache under ``root``; yields its URL.

    ``argv`` are more command-line flags (``["--data", folder]``), ``data`` and ``galleries`` go to
    ``app.build_demo``. The environment variables the app reads are restored afterwards."""
    import app

    old = {name: os.environ.get(name) for name in ENVIRONMENT}
    os.environ["POSE2ID_CACHE"] = str(root / "cache")
    os.environ.pop("GRADIO_SERVER_NAME", None)
    os.environ.pop("GRADIO_SERVER_PORT", None)
    demo = None
    try:
        args = app.parse_args([*argv, "--test-pipeline", "--port", str(free_port())])
        demo = app.build_demo(data=data, test_pipeline=True, galleries=galleries)
        demo.delete_cache = app.DELETE_CACHE
        demo.queue(default_concurrency_limit=4).launch(**app.launch_options(args, galleries))
        yield f"http://127.0.0.1:{args.port}/"
    finally:
        if demo is not None:
            demo.close()
        for name, value in old.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
