//! A [`Target`] as the source of a service name for the HTTP client (`sdkit::http`).
//!
//! ```no_run
//! use sdkit::Target;
//! use sdkit::http::{Client, Config};
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::new(Config::default())?;
//! let web: Target = "etcd://127.0.0.1:2379/services/web".parse()?;
//! client.add_service("web", &web)?;
//! let body = client.get("http://web/health").await?.text().await?;
//! # Ok(()) }
//! ```

use sdkit_core::{BoxError, Instancer};

use crate::Target;

impl sdkit_http::Source for Target {
    /// The URL with secrets redacted.
    fn registry(&self) -> String {
        self.to_string()
    }

    fn instancer(&self) -> Result<Box<dyn Instancer>, BoxError> {
        Ok(Target::instancer(self)?)
    }
}
