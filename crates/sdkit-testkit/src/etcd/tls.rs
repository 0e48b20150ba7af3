//! TLS material for an etcd cluster started with
//! [`EtcdCluster::start_tls`](super::EtcdCluster::start_tls), made with the `openssl` CLI.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::process::find_binary;

/// TLS material made with the `openssl` CLI: a CA, a server certificate for `127.0.0.1` /
/// `localhost`, and a client certificate (CN `root`), all PEM, EC P-256.
#[derive(Debug, Clone)]
pub struct EtcdTls {
    /// The CA certificate.
    pub ca: PathBuf,
    /// The server certificate.
    pub server_cert: PathBuf,
    /// The server key.
    pub server_key: PathBuf,
    /// The client certificate.
    pub client_cert: PathBuf,
    /// The client key.
    pub client_key: PathBuf,
}

impl EtcdTls {
    /// Generates the material in `dir`.
    ///
    /// # Errors
    ///
    /// When `openssl` is missing or fails.
    pub fn generate(dir: &Path) -> io::Result<Self> {
        let openssl = find_binary("openssl")
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "openssl not found"))?;
        let path = |name: &str| dir.join(name);
        let run = |args: &[&str]| -> io::Result<()> {
            let out = Command::new(&openssl)
                .args(args)
                .current_dir(dir)
                .output()?;
            if out.status.success() {
                Ok(())
            } else {
                Err(io::Error::other(format!(
                    "openssl {args:?}: {}",
                    String::from_utf8_lossy(&out.stderr)
                )))
            }
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let mut ca_args = vec!["req", "-x509"];
        ca_args.extend(ec);
        ca_args.extend([
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=sdkit-test-ca",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        run(&ca_args)?;
        for (name, cn, ext) in [
            (
                "server",
                "/CN=127.0.0.1",
                "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\nbasicConstraints=CA:FALSE\n",
            ),
            (
                "client",
                "/CN=root",
                "extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\nbasicConstraints=CA:FALSE\n",
            ),
        ] {
            let key = format!("{name}.key");
            let csr = format!("{name}.csr");
            let pem = format!("{name}.pem");
            let ext_file = format!("{name}.ext");
            std::fs::write(path(&ext_file), ext)?;
            let mut req = vec!["req"];
            req.extend(ec);
            req.extend(["-keyout", &key, "-out", &csr, "-subj", cn]);
            run(&req)?;
            run(&[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &pem,
                "-days",
                "2",
                "-extfile",
                &ext_file,
            ])?;
        }
        Ok(EtcdTls {
            ca: path("ca.pem"),
            server_cert: path("server.pem"),
            server_key: path("server.key"),
            client_cert: path("client.pem"),
            client_key: path("client.key"),
        })
    }
}
