"""TLS to the MQTT broker: the client context, and TLS failures named as such.

Standard library only (:mod:`edge.mqtt_client` is the one paho importer). The
context verifies the certificate and host name against ``ca_file`` or the system store;
there is no plaintext fallback.
"""

from __future__ import annotations

import ssl

from edge.config import MqttConfig
from edge.errors import BrokerUnavailable


class _ClosingSSLSocket(ssl.SSLSocket):
    """Closes itself when the handshake fails (paho would leak the socket)."""

    def do_handshake(self, block: bool = False) -> None:
        try:
            super().do_handshake(block)
        except ssl.SSLError:
            self.close()
            raise
        except OSError as exc:  # reset / EOF: still a TLS failure, say so
            self.close()
            raise ssl.SSLError(exc.errno or 0,
                               f"connection closed during the TLS handshake: {exc}") from exc
        except BaseException:
            self.close()
            raise


def tls_context(config: MqttConfig) -> ssl.SSLContext:
    """A client context that verifies the server (``ca_file`` or the system store)."""
    try:
        ctx = ssl.create_default_context(
            ssl.Purpose.SERVER_AUTH, cafile=str(config.ca_file) if config.ca_file else None)
        if config.cert_file is not None:
            ctx.load_cert_chain(config.cert_file, config.key_file)
    except OSError as exc:  # ssl.SSLError is an OSError
        raise BrokerUnavailable(f"TLS setup failed: {exc}") from exc
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.sslsocket_class = _ClosingSSLSocket
    return ctx


def tls_failure(exc: BaseException, url: str) -> BrokerUnavailable | None:
    """What a failed connect to ``url`` says when TLS failed; None when TLS did not."""
    cause = exc if isinstance(exc, ssl.SSLError) else exc.__cause__ or exc.__context__
    if isinstance(cause, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(exc):
        return BrokerUnavailable(f"TLS verification failed: {cause or exc}")
    if isinstance(cause, ssl.SSLError):
        return BrokerUnavailable(f"TLS handshake with {url} failed: {cause}")
    return None
