//! Wiring: the service kit's start-up (`service_kit::wiring`) with the inventory
//! service's parts: its routes, the outbox relay's route, the reservation saga and
//! the product view's follower.

use std::sync::Arc;

use projections::ProductViews;
use service_kit::{Named, Operated};

use crate::Settings;
use crate::products::Products;
use crate::reannounce::Reannouncer;
use crate::saga::ReservationSaga;
use crate::settings::Inventory;

/// The consumer's task name: in readiness answers and on `pipeline_stalled{task}`.
const SAGA_CONSUMER: &str = "saga consumer";

/// The inventory service, bound to its port and ready to serve.
pub struct Application {
    service: service_kit::Service,
    products: Arc<Products>,
}

impl service_kit::Application for Application {
    type Settings = Settings;

    async fn build(settings: &Settings) -> anyhow::Result<Self> {
        let foundation = service_kit::Foundation::connect(settings, &migrations::INVENTORY).await?;
        let products = Arc::new(Products::new(foundation.pool.clone()).notifying(foundation.notifier.clone()));
        let service = foundation.bind(crate::http::routes(products.clone())).await?;
        Ok(Self { service, products })
    }

    fn port(&self) -> u16 {
        self.service.port()
    }

    /// Serves until `shutdown` completes while the relay, the saga's consumer and the
    /// view follower run supervised beside it (see `service_kit::Service::serve`).
    async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let Self { mut service, products } = self;
        service.relay(<Inventory as Operated>::route);
        let reannouncer =
            Reannouncer::new(service.pool().clone(), products.clone(), service.producer(), service.kafka());
        let saga = ReservationSaga::new(products.clone()).reannouncing(reannouncer);
        service.consumer(SAGA_CONSUMER, |topics| &topics.order_events, Arc::new(saga));
        service.view_follower::<ProductViews>(products.events().clone());
        service.serve(Inventory::IDENTITY.title, shutdown).await
    }
}
