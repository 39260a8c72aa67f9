//! Wiring: connect and migrate the database, build the router, bind, serve.

use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use tokio::net::TcpListener;

use crate::Settings;
use crate::products::Products;

/// The inventory service, bound to its port and ready to serve.
pub struct Application {
    listener: TcpListener,
    router: Router,
}

impl Application {
    /// Connects to the database (applying migrations) and binds the listener, so the
    /// port is known (and taken) before serving starts.
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        let pool = migrations::connect_and_migrate(
            settings.database.url.expose(),
            &settings.database_schema,
            settings.database.max_connections,
            &migrations::INVENTORY,
        )
        .await?;
        let products = Arc::new(Products::new(pool.clone(), settings.snapshot_every));
        let router = http_server::with_common_layers(crate::http::routes(products), pool, &settings.http);
        let address = format!("{}:{}", settings.host, settings.port);
        let listener = TcpListener::bind(&address).await.with_context(|| format!("binding {address}"))?;
        Ok(Self { listener, router })
    }

    /// The port actually bound.
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or_default()
    }

    /// Serves until `shutdown` completes, then drains requests in flight.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        tracing::info!(port = self.port(), "inventory service listening");
        http_server::serve(self.listener, self.router, shutdown).await
    }
}
