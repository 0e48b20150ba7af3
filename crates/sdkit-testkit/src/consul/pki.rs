//! A throw-away PKI for the double's TLS mode.

use super::*;

/// A throw-away PKI for TLS tests: a CA, a server certificate for `127.0.0.1`, and a client
/// certificate. The client files live in a temporary directory removed on drop.
#[derive(Debug)]
pub struct TestPki {
    /// The CA certificate (PEM) the client must trust.
    pub ca_pem: String,
    /// The client certificate chain (PEM file).
    pub client_cert_file: std::path::PathBuf,
    /// The client private key (PEM file).
    pub client_key_file: std::path::PathBuf,
    pub(crate) dir: std::path::PathBuf,
}

impl Drop for TestPki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl TestPki {
    pub(crate) fn generate() -> std::io::Result<(Self, Arc<rustls::ServerConfig>)> {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
        let err = |e: &dyn std::fmt::Display| std::io::Error::other(e.to_string());

        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(|e| err(&e))?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().map_err(|e| err(&e))?)
            .map_err(|e| err(&e))?;
        let server_key = KeyPair::generate().map_err(|e| err(&e))?;
        let server_cert = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".into()])
            .map_err(|e| err(&e))?
            .signed_by(&server_key, &ca)
            .map_err(|e| err(&e))?;
        let client_key = KeyPair::generate().map_err(|e| err(&e))?;
        let client_cert = CertificateParams::new(vec!["sdkit-client".to_string()])
            .map_err(|e| err(&e))?
            .signed_by(&client_key, &ca)
            .map_err(|e| err(&e))?;

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.der().clone()).map_err(|e| err(&e))?;
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::clone(&provider),
        )
        .build()
        .map_err(|e| err(&e))?;
        let server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| err(&e))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                vec![CertificateDer::from(server_cert.der().to_vec())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
            )
            .map_err(|e| err(&e))?;

        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "sdkit-consul-pki-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)?;
        let client_cert_file = dir.join("client.pem");
        let client_key_file = dir.join("client-key.pem");
        std::fs::write(&client_cert_file, client_cert.pem())?;
        std::fs::write(&client_key_file, client_key.serialize_pem())?;
        Ok((
            TestPki {
                ca_pem: ca.pem(),
                client_cert_file,
                client_key_file,
                dir,
            },
            Arc::new(server),
        ))
    }
}
