//! TLS towards the agent: a rustls client configuration (ring provider) from a
//! [`TlsConfig`]: the CA file and/or PEM (the Mozilla roots when neither is given) and, for
//! mutual TLS, the client certificate and key.

use std::fmt;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::TlsConfig;
use crate::error::Error;

pub(crate) fn tls_config(tls: &TlsConfig) -> Result<rustls::ClientConfig, Error> {
    let err = |what: &str, e: &dyn fmt::Display| Error::Config(format!("TLS: {what}: {e}"));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| err("protocol versions", &e))?;
    let mut roots = rustls::RootCertStore::empty();
    let mut custom = false;
    if let Some(path) = &tls.ca_file {
        custom = true;
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| err(&format!("CA file {}", path.display()), &e))?;
        for cert in certs {
            let cert = cert.map_err(|e| err(&format!("CA file {}", path.display()), &e))?;
            roots
                .add(cert)
                .map_err(|e| err(&format!("CA file {}", path.display()), &e))?;
        }
    }
    if let Some(pem) = &tls.ca_pem {
        custom = true;
        for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            let cert = cert.map_err(|e| err("CA PEM", &e))?;
            roots.add(cert).map_err(|e| err("CA PEM", &e))?;
        }
    }
    if custom && roots.is_empty() {
        return Err(Error::Config("TLS: the CA holds no certificate".into()));
    }
    if !custom {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    let builder = builder.with_root_certificates(roots);
    match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
                .map_err(|e| err(&format!("certificate {}", cert.display()), &e))?
                .collect::<Result<_, _>>()
                .map_err(|e| err(&format!("certificate {}", cert.display()), &e))?;
            if chain.is_empty() {
                return Err(Error::Config(format!(
                    "TLS: certificate {} holds no certificate",
                    cert.display()
                )));
            }
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| err(&format!("key {}", key.display()), &e))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| err("client certificate", &e))
        }
        (None, None) => Ok(builder.with_no_client_auth()),
        _ => Err(Error::Config(
            "TLS: a client certificate needs both cert_file and key_file".into(),
        )),
    }
}
