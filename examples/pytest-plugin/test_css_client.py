"""What a user's own test looks like with csscert's pytest plugin: no conftest, no setup code.

``pip install csscert huaweicloudsdkcss pytest`` and run ``pytest`` in this folder: the plugin
(registered by csscert's ``pytest11`` entry point) provides ``csscert_server`` and
``csscert_tls_server``. ``tests/compat/test_pytest_plugin.py`` runs this file that way.
"""

from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkcore.http.http_config import HttpConfig
from huaweicloudsdkcss.v1 import CssClient, DownloadCertRequest


def download_certificate(endpoint, access_key, secret_key, project_id, ca_file=None):
    """The code under test: fetch CloudSearchService.cer the way an application would."""
    config = HttpConfig.get_default_config()
    if ca_file is not None:
        config.ssl_ca_cert = ca_file
    client = (
        CssClient.new_builder()
        .with_http_config(config)
        .with_credentials(BasicCredentials(access_key, secret_key, project_id))
        .with_endpoint(endpoint)
        .build()
    )
    return client.download_cert(DownloadCertRequest()).raw_content


def test_download_returns_the_ca_certificate(csscert_server):
    pem = download_certificate(
        csscert_server.endpoint,
        csscert_server.access_key,
        csscert_server.secret_key,
        csscert_server.project_id,
    )
    assert pem.startswith(b"-----BEGIN CERTIFICATE-----")
    assert pem == csscert_server.ca_file.read_bytes()


def test_a_wrong_secret_key_is_refused(csscert_server):
    try:
        download_certificate(
            csscert_server.endpoint, csscert_server.access_key, "x" * 40, csscert_server.project_id
        )
    except ClientRequestException as exc:
        assert exc.status_code == 401
    else:
        raise AssertionError("a wrong secret key was accepted")


def test_download_over_https_verifying_csscert_with_its_own_ca(csscert_tls_server):
    assert csscert_tls_server.endpoint.startswith("https://")
    pem = download_certificate(
        csscert_tls_server.endpoint,
        csscert_tls_server.access_key,
        csscert_tls_server.secret_key,
        csscert_tls_server.project_id,
        ca_file=str(csscert_tls_server.ca_file),
    )
    assert pem == csscert_tls_server.ca_file.read_bytes()
