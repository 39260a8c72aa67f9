//! Handlers of `/inventory/products`: request in, one command or query, response out.

use std::sync::Arc;

use axum::extract::State;
use domain::ProductId;
use domain::inventory::ProductCommand;
use eventstore::{EventMetadata, StoredEvent};
use http_server::{ApiJson, ApiPath, ApiQuery, ApiResponse, RequestContext};
use projections::{Page, ProductView};

use super::ApiError;
use super::dto::{AddProductRequest, ListProductsQuery, RestockRequest};
use crate::products::Products;

type Result<T> = std::result::Result<ApiResponse<T>, ApiError>;

const ACTOR: &str = "inventory-http";

fn metadata(context: &RequestContext) -> EventMetadata {
    EventMetadata::new(&context.correlation_id, &context.request_id, ACTOR)
}

/// A product id from the path; one that cannot exist is simply not found.
fn product_id(ApiPath(raw): ApiPath) -> std::result::Result<ProductId, ApiError> {
    ProductId::parse(raw.clone()).map_err(|_| ApiError::ProductNotFound(raw))
}

/// `POST /inventory/products`: add a product with its first stock.
pub async fn add(State(products): State<Arc<Products>>, context: RequestContext, ApiJson(request): ApiJson<AddProductRequest>) -> Result<ProductView> {
    let (product_id, add) = request.into_command();
    let product = products
        .execute(&product_id, ProductCommand::AddProduct(add), &metadata(&context))
        .await
        .map_err(|e| ApiError::about(&product_id, e))?;
    Ok(ApiResponse::created(product))
}

/// `GET /inventory/products/{productId}`.
pub async fn get(State(products): State<Arc<Products>>, path: ApiPath) -> Result<ProductView> {
    let product_id = product_id(path)?;
    let product = products.get(&product_id).await.map_err(|e| ApiError::about(&product_id, e))?;
    Ok(ApiResponse::ok(product))
}

/// `POST /inventory/products/{productId}/restock`: receive units.
pub async fn restock(
    State(products): State<Arc<Products>>,
    context: RequestContext,
    path: ApiPath,
    ApiJson(request): ApiJson<RestockRequest>,
) -> Result<ProductView> {
    let product_id = product_id(path)?;
    let product = products
        .execute(&product_id, ProductCommand::Restock { quantity: request.quantity }, &metadata(&context))
        .await
        .map_err(|e| ApiError::about(&product_id, e))?;
    Ok(ApiResponse::ok(product))
}

/// `GET /inventory/products?limit=&cursor=`: by product id.
pub async fn list(State(products): State<Arc<Products>>, ApiQuery(query): ApiQuery<ListProductsQuery>) -> Result<Page<ProductView>> {
    let (limit, cursor) = query.into_parts()?;
    Ok(ApiResponse::ok(products.list(limit, cursor.as_ref()).await?))
}

/// `GET /inventory/products/{productId}/events`: the product's history, oldest first.
pub async fn history(State(products): State<Arc<Products>>, path: ApiPath) -> Result<Vec<StoredEvent>> {
    let product_id = product_id(path)?;
    let events = products.history(&product_id).await.map_err(|e| ApiError::about(&product_id, e))?;
    Ok(ApiResponse::ok(events))
}
