"""One keep-alive HTTP connection for the bench's Python helpers (standard library only).

Used by smallblobs.py and pagination.py: each worker thread holds one, like a real client."""

import http.client
import urllib.parse


class Connection:
    """One keep-alive connection to the server; reconnects once if the server closed it between requests."""

    def __init__(self, base, timeout):
        u = urllib.parse.urlsplit(base)
        self.base, self.host, self.port, self.timeout = base, u.hostname, u.port or 80, timeout
        self.conn = None

    def request(self, method, target, body=None, headers=None):
        """Returns (response, body bytes); the body is read whole so the connection can be reused."""
        headers = dict(headers or {})
        if body is not None or method in ("POST", "PUT"):
            headers["Content-Length"] = str(len(body or b""))
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self.conn.request(method, target, body=body, headers=headers)
                resp = self.conn.getresponse()
                data = resp.read()
                if resp.will_close:
                    self.close()
                return resp, data
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()
                if attempt == 2:
                    raise

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def target_of(self, location, current):
        """Resolve a Location header (absolute or relative) to a request target on this server."""
        url = urllib.parse.urljoin(urllib.parse.urljoin(self.base, current), location)
        u = urllib.parse.urlsplit(url)
        return u.path + ("?" + u.query if u.query else "")
