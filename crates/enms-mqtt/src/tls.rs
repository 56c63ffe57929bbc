//! TLS to the broker (`mqtts://`): the rustls client configuration built
//! from `[mqtt]`'s files — the CAs to trust (`ca_file`, or the system's
//! roots when it is unset) and, for brokers that ask for one, a client
//! certificate and key (`client_cert_file`, `client_key_file`).
//!
//! The crypto provider is named here (ring) rather than taken from the
//! process default: the workspace links rustls with two providers (ring
//! and aws-lc-rs, through other crates), and rustls refuses to guess
//! between them. Files are read when the configuration is checked, so
//! `enms config check` names a missing or empty file before a server runs.

use std::path::Path;
use std::sync::Arc;

use enms_core::setting::InvalidSetting;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

use crate::MqttConfig;

/// The client configuration for `config`, or `None` for a plain `mqtt://`.
pub fn client_config(config: &MqttConfig) -> Result<Option<Arc<ClientConfig>>, InvalidSetting> {
    let broker = config.broker()?;
    if !broker.tls {
        for (set, key) in [
            (config.ca_file.is_some(), "mqtt.ca_file"),
            (config.client_cert_file.is_some(), "mqtt.client_cert_file"),
            (config.client_key_file.is_some(), "mqtt.client_key_file"),
        ] {
            if set {
                return Err(InvalidSetting::new(key, "is for TLS: use an mqtts:// url"));
            }
        }
        return Ok(None);
    }
    let roots = match &config.ca_file {
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for cert in certificates(path, "mqtt.ca_file")? {
                roots.add(cert).map_err(|e| file_error("mqtt.ca_file", path, &e.to_string()))?;
            }
            roots
        }
        None => system_roots()?,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| InvalidSetting::new("mqtt.url", format!("TLS: {e}")))?
        .with_root_certificates(roots);
    let tls = match (&config.client_cert_file, &config.client_key_file) {
        (None, None) => builder.with_no_client_auth(),
        (Some(cert), Some(key)) => {
            let chain = certificates(cert, "mqtt.client_cert_file")?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| file_error("mqtt.client_key_file", key, &format!("no private key in PEM ({e})")))?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                InvalidSetting::new("mqtt.client_key_file", format!("does not fit the certificate: {e}"))
            })?
        }
        (Some(_), None) => {
            return Err(InvalidSetting::new("mqtt.client_key_file", "a client certificate needs its key"));
        }
        (None, Some(_)) => {
            return Err(InvalidSetting::new("mqtt.client_cert_file", "a client key needs its certificate"));
        }
    };
    Ok(Some(Arc::new(tls)))
}

/// Every certificate in a PEM file; none is an error, as is a file that
/// cannot be read.
fn certificates(path: &Path, setting: &'static str) -> Result<Vec<CertificateDer<'static>>, InvalidSetting> {
    let bytes = std::fs::read(path).map_err(|e| file_error(setting, path, &e.to_string()))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(setting, path, &format!("not PEM certificates ({e})")))?;
    if certs.is_empty() {
        return Err(file_error(setting, path, "holds no PEM certificate"));
    }
    Ok(certs)
}

fn system_roots() -> Result<RootCertStore, InvalidSetting> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        return Err(InvalidSetting::new(
            "mqtt.ca_file",
            "the system has no trusted CA certificates; name the broker's CA in ca_file",
        ));
    }
    Ok(roots)
}

fn file_error(setting: &'static str, path: &Path, why: &str) -> InvalidSetting {
    InvalidSetting::new(setting, format!("{}: {why}", path.display()))
}
