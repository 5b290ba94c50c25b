"""`python -m core.probe /readyz`: the container healthcheck's HTTP client.

The slim image has no curl; this asks the local server for a path and exits 0 on a 2xx,
1 otherwise (printing why), using only the standard library and no Django import.
"""

import sys
import urllib.error
import urllib.request


def main() -> int:
    path = sys.argv[1] if len(sys.argv) > 1 else "/healthz"
    url = f"http://127.0.0.1:8000{path}"  # gunicorn.conf.py's bind
    try:
        with urllib.request.urlopen(url, timeout=4) as response:
            return 0 if 200 <= response.status < 300 else 1
    except urllib.error.HTTPError as error:
        sys.stderr.write(f"{url}: HTTP {error.code} {error.read(500).decode(errors='replace')}\n")
    except OSError as error:
        sys.stderr.write(f"{url}: {error}\n")
    return 1


if __name__ == "__main__":
    sys.exit(main())
