//! Handlers of `/inventory/products`: request in, one command or query, response out.

use std::sync::Arc;

use axum::extract::{FromRequestParts, OriginalUri, State};
use axum::http::request::Parts;
use domain::ProductId;
use domain::inventory::ProductCommand;
use eventstore::{EventMetadata, StoredEvent};
use http_server::history::{HistoryQuery, next_page_link};
use http_server::{ApiJson, ApiPath, ApiQuery, ApiResponse, ErrorResponse, IfMatch, RequestContext};
use projections::{Page, ProductView};

use http_server::openapi::{ConditionalWrite, Contended, NotFound};
use http_server::{Failure, Page as PageSchema, Success};
use serde_json::json;

use super::ApiError;
use super::dto::{
    AddProductRequest, AdjustmentRequest, GetProductQuery, ListProductsQuery, RestockRequest, StockChangeHeaders,
    UpdateProductHeaders, UpdateProductRequest, with_client_cursor,
};
use super::openapi::{ProductResource, failure, product_example, success};
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
#[utoipa::path(post, path = "/inventory/products", tag = "products", summary = "Add a product",
    request_body(content = AddProductRequest, example = json!({"productId": "mug", "name": "Mug", "quantity": 100, "lowStockThreshold": 10})),
    responses(
        (status = 201, description = "The product.", body = Success<ProductView>, example = json!(success(product_example(100, 0)))),
        (status = 409, description = "A product with this id exists.", body = Failure, example = json!(failure("product 'mug' already exists"))),
        (status = 422, description = "A value breaks a rule: a bad id or name, a negative quantity.", body = Failure,
            example = json!(failure("productId: must be at most 64 characters long"))),
    ))]
pub async fn add(
    State(products): State<Arc<Products>>,
    context: RequestContext,
    ApiJson(request): ApiJson<AddProductRequest>,
) -> Result<ProductView> {
    let (product_id, add) = request.into_command();
    let product = products
        .execute(&product_id, ProductCommand::AddProduct(add), &metadata(&context))
        .await
        .map_err(|e| ApiError::about(&product_id, e))?;
    let version = product.version;
    Ok(ApiResponse::created(product).versioned(version))
}

/// `GET /inventory/products/{productId}`.
/// With `asOf`, the product as it was then, folded from its events (not the view).
#[utoipa::path(get, path = "/inventory/products/{productId}", tag = "products", summary = "Get a product, now or as it was",
    params(("productId" = String, Path, description = "The product's id."), GetProductQuery),
    responses(
        (status = 200, description = "The product.", body = Success<ProductView>, headers(("ETag" = String, description = "The product's version, quoted (e.g. `\"3\"`): send it as `If-Match` to write only if nobody changed it meanwhile.")), example = json!(success(product_example(98, 2)))),
        (status = 404, description = "No such product (or it had no such version, or did not exist yet at that time).", body = Failure, example = json!(failure("product 'mug' not found"))),
        (status = 422, description = "`asOf` is neither a version nor an RFC 3339 time.", body = Failure, example = json!(failure("invalid query parameter 'asOf': versions start at 1"))),
    ))]
pub async fn get(
    State(products): State<Arc<Products>>,
    path: ApiPath,
    ApiQuery(query): ApiQuery<GetProductQuery>,
) -> Result<ProductView> {
    let product_id = product_id(path)?;
    let product = match query.as_of {
        Some(as_of) => products.as_of(&product_id, as_of).await,
        None => products.get(&product_id).await,
    };
    let product = product.map_err(|e| ApiError::about(&product_id, e))?;
    let version = product.version;
    Ok(ApiResponse::ok(product).versioned(version))
}

/// `PUT /inventory/products/{productId}`: rename it and/or change its low-stock
/// threshold (the stock alert the new level implies follows).
#[utoipa::path(put, path = "/inventory/products/{productId}", tag = "products", summary = "Rename a product or change its threshold",
    params(("productId" = String, Path, description = "The product's id."), UpdateProductHeaders),
    request_body(content = UpdateProductRequest, example = json!({"name": "Big mug", "lowStockThreshold": 5})),
    responses(
        (status = 200, description = "The product as it now is; the same values again change nothing.", body = Success<ProductView>, headers(("ETag" = String, description = "The product's version, quoted (e.g. `\"3\"`): send it as `If-Match` to write only if nobody changed it meanwhile.")), example = json!(success(product_example(98, 2)))),
        NotFound::<ProductResource>, Contended::<ProductResource>, ConditionalWrite::<ProductResource>,
        (status = 422, description = "Nothing to update, a blank or too long name, or a threshold that is not a whole number.", body = Failure,
            example = json!(failure("nothing to update: give name and/or lowStockThreshold"))),
    ))]
pub async fn update(
    State(products): State<Arc<Products>>,
    context: RequestContext,
    path: ApiPath,
    IfMatch(versions): IfMatch,
    ApiJson(request): ApiJson<UpdateProductRequest>,
) -> Result<ProductView> {
    let product_id = product_id(path)?;
    let update = ProductCommand::UpdateProduct(request.into_command()?);
    write(&products, &product_id, versions, update, metadata(&context)).await
}

/// `POST /inventory/products/{productId}/restock`: receive units.
#[utoipa::path(post, path = "/inventory/products/{productId}/restock", tag = "products", summary = "Receive units",
    params(("productId" = String, Path, description = "The product's id."), StockChangeHeaders),
    request_body(content = RestockRequest, example = json!({"quantity": 50})),
    responses(
        (status = 200, description = "The product with the units added.", body = Success<ProductView>, headers(("ETag" = String, description = "The product's version, quoted (e.g. `\"3\"`): send it as `If-Match` to write only if nobody changed it meanwhile.")), example = json!(success(product_example(148, 2)))),
        NotFound::<ProductResource>, Contended::<ProductResource>, ConditionalWrite::<ProductResource>,
        (status = 422, description = "The quantity is not from 1 to 1,000,000, or the `Idempotency-Key` is malformed or was used for another request on this product.", body = Failure,
            example = json!(failure("quantity: must be a whole number from 1 to 1000000, got 0"))),
    ))]
pub async fn restock(change: StockChange, ApiJson(request): ApiJson<RestockRequest>) -> Result<ProductView> {
    change.write(ProductCommand::Restock { quantity: request.quantity }).await
}

/// `POST /inventory/products/{productId}/adjustments`: correct the units on hand.
#[utoipa::path(post, path = "/inventory/products/{productId}/adjustments", tag = "products", summary = "Correct the units on hand",
    params(("productId" = String, Path, description = "The product's id."), StockChangeHeaders),
    request_body(content = AdjustmentRequest, example = json!({"quantity": -3, "reason": "DAMAGED"})),
    responses(
        (status = 200, description = "The product with the units corrected (and the stock alert the new level implies recorded).", body = Success<ProductView>, headers(("ETag" = String, description = "The product's version, quoted (e.g. `\"3\"`): send it as `If-Match` to write only if nobody changed it meanwhile.")), example = json!(success(product_example(95, 2)))),
        NotFound::<ProductResource>, ConditionalWrite::<ProductResource>,
        (status = 409, description = "A removal larger than what is available (reserved units are promised to orders), or concurrent writers kept winning.", body = Failure,
            example = json!(failure("cannot remove 7 units: 6 are available (reserved units are promised to orders)"))),
        (status = 422, description = "The quantity is 0 or beyond 1,000,000 either way, the reason is not one of `DAMAGED`, `LOST`, `FOUND`, `COUNT_CORRECTION`, or the `Idempotency-Key` is malformed or was used for another request on this product.", body = Failure,
            example = json!(failure("quantity: must be a whole number from -1000000 to 1000000 other than 0, got 0"))),
    ))]
pub async fn adjust(change: StockChange, ApiJson(request): ApiJson<AdjustmentRequest>) -> Result<ProductView> {
    change.write(ProductCommand::AdjustStock { quantity: request.quantity, reason: request.reason }).await
}

/// What a stock change (a restock, an adjustment) takes from the request besides its
/// body: the product in the path, the versions `If-Match` allows, the
/// `Idempotency-Key` and who asks. A malformed path or `If-Match` is refused before the
/// body is read; an unknown product or a bad key after it, when the change is written.
pub struct StockChange {
    products: Arc<Products>,
    path: ApiPath,
    versions: Option<Vec<u64>>,
    key: std::result::Result<Option<String>, String>,
    context: RequestContext,
}

impl FromRequestParts<Arc<Products>> for StockChange {
    type Rejection = ErrorResponse;

    async fn from_request_parts(
        parts: &mut Parts,
        products: &Arc<Products>,
    ) -> std::result::Result<Self, ErrorResponse> {
        let Ok(context) = RequestContext::from_request_parts(parts, products).await;
        let path = ApiPath::from_request_parts(parts, products).await?;
        let IfMatch(versions) = IfMatch::from_request_parts(parts, products).await?;
        let key = http_server::idempotency_key(&parts.headers);
        Ok(Self { products: Arc::clone(products), path, versions, key, context })
    }
}

impl StockChange {
    /// Writes `command` to the product as [`write`] does, recorded with the request's
    /// `Idempotency-Key`.
    async fn write(self, command: ProductCommand) -> Result<ProductView> {
        let product_id = product_id(self.path)?;
        let key = self.key.map_err(ApiError::Invalid)?;
        let metadata = metadata(&self.context).with_idempotency_key(key);
        write(&self.products, &product_id, self.versions, command, metadata).await
    }
}

/// A write to product `product_id`: `command`, only while the product is at one of
/// `versions` when given (`If-Match`), answered with the product and its `ETag`.
async fn write(
    products: &Products,
    product_id: &ProductId,
    versions: Option<Vec<u64>>,
    command: ProductCommand,
    metadata: EventMetadata,
) -> Result<ProductView> {
    let product = products
        .execute_if(product_id, versions.as_deref(), command, &metadata)
        .await
        .map_err(|e| ApiError::about(product_id, e))?;
    let version = product.version;
    Ok(ApiResponse::ok(product).versioned(version))
}

/// `GET /inventory/products?limit=&cursor=`: by product id.
#[utoipa::path(get, path = "/inventory/products", tag = "products", summary = "List products, by id",
    params(ListProductsQuery),
    responses(
        (status = 200, description = "A page of products, by id.", body = Success<PageSchema<ProductView>>,
            example = json!(success(json!({"items": [product_example(100, 0)], "nextCursor": null})))),
        (status = 422, description = "A parameter does not fit: a bad limit, or a cursor that is not a product id.", body = Failure,
            example = json!(failure("limit must be from 1 to 100, got 0"))),
    ))]
pub async fn list(
    State(products): State<Arc<Products>>,
    ApiQuery(query): ApiQuery<ListProductsQuery>,
) -> Result<Page<ProductView>> {
    let (limit, cursor) = query.into_parts()?;
    Ok(ApiResponse::ok(with_client_cursor(products.list(limit, cursor.as_ref()).await?)))
}

/// `GET /inventory/products/{productId}/events`: the product's history, oldest first.
#[utoipa::path(get, path = "/inventory/products/{productId}/events", tag = "products", summary = "A product's history",
    params(("productId" = String, Path, description = "The product's id."), HistoryQuery),
    responses(
        (status = 200, description = "A page of the product's events, oldest first (all of them unless more than `limit`).", body = Success<Vec<StoredEvent>>, headers(("Link" = String, description = "While more events follow: `<…/events?from=N&limit=M>; rel=\"next\"`, the next page."))),
        NotFound::<ProductResource>,
        (status = 422, description = "`from` or `limit` out of range.", body = Failure, example = json!(failure("limit must be from 1 to 1000, got 0"))),
    ))]
pub async fn history(
    State(products): State<Arc<Products>>,
    OriginalUri(uri): OriginalUri,
    path: ApiPath,
    ApiQuery(query): ApiQuery<HistoryQuery>,
) -> Result<Vec<StoredEvent>> {
    let product_id = product_id(path)?;
    let (from, limit) = query.range().map_err(ApiError::Invalid)?;
    let page = products.history(&product_id, from, limit).await.map_err(|e| ApiError::about(&product_id, e))?;
    let next = page.next_from.map(|next| next_page_link(uri.path(), next, limit));
    Ok(ApiResponse::ok(page.events).next_page(next))
}
