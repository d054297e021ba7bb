//! What the three list endpoints share: paging metadata, sort order, the checks on their
//! parameters, and items trimmed to the `fields` asked for.

use std::borrow::Cow;
use std::marker::PhantomData;
use std::sync::Arc;

use poem::http::header;
use poem::{IntoResponse, Response};
use poem_openapi::payload::{Json, Payload};
use poem_openapi::registry::{MetaSchemaRef, Registry};
use poem_openapi::types::{ParseFromJSON, ParseResult, ToJSON, Type};
use poem_openapi::{Enum, Object};
use serde::Serialize;
use serde_json::Value;

pub use super::json_out::{Fields, JsonOut, Obj};
use super::with_db;
use crate::db::Conn;
use crate::domain::list::{parse_fields, parse_include, ListQuery, PageMeta, MAX_SEARCH_CHARS};
use crate::domain::time::{parse_instant, DayEnd};
use crate::error::ApiError;
use crate::state::AppState;

/// Paging facts of a list.
#[derive(Object, Serialize, Clone)]
pub struct Meta {
    /// The page returned (from 1).
    pub page: u32,
    /// Items per page.
    pub limit: u32,
    /// Items matching the filters, over all pages.
    pub total: u64,
    /// Pages needed for `total` items.
    #[oai(rename = "totalPages")]
    #[serde(rename = "totalPages")]
    pub total_pages: u64,
}

impl From<PageMeta> for Meta {
    fn from(m: PageMeta) -> Self {
        Meta { page: m.page, limit: m.limit, total: m.total, total_pages: m.total_pages }
    }
}

/// Sort direction.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[oai(rename_all = "lowercase")]
pub enum SortOrder {
    Asc,
    Desc,
}

/// The schema an item refers to (with `include=schema`).
#[derive(Object, Clone)]
pub struct SchemaRef {
    /// Schema UUID.
    pub id: String,
    /// Schema name.
    pub name: String,
}

/// The list parameters every list takes, before checking.
pub struct ListParams {
    pub page: u32,
    pub limit: u32,
    pub sort_order: Option<SortOrder>,
    pub search: Option<String>,
    pub created_after: Option<String>,
    pub created_before: Option<String>,
    pub fields: Option<String>,
    pub include: Option<String>,
}

impl ListParams {
    /// Checks every parameter against what the endpoint offers, in the order the first fault
    /// is reported: paging, sort and filters, then `include` and `fields`.
    pub fn check(self, spec: ListSpec) -> Result<CheckedList, ApiError> {
        let (fields, include) = (self.fields.clone(), self.include.clone());
        let query = self.query(spec.sort_column)?;
        let with_schema = match spec.includes {
            Includes::Schema => include_schema(include.as_deref())?,
            Includes::Nothing(_) => false,
        };
        let fields = fields_param(fields.as_deref(), spec.fields, with_schema)?;
        if let (Includes::Nothing(resource), Some(inc)) =
            (spec.includes, include.as_deref().filter(|s| !s.trim().is_empty()))
        {
            return Err(ApiError::bad_request(format!(
                "include: unknown relation '{inc}'; {resource} have none to include"
            )));
        }
        Ok(CheckedList { query, fields, with_schema })
    }

    /// Checks paging, sort and filters; `sort_column` is the already-mapped column for `sort_by`.
    fn query(self, sort_column: &'static str) -> Result<ListQuery, ApiError> {
        // an empty value (`created_after=`, as forms send) means the filter is not set
        let after = match self.created_after.as_deref().filter(|s| !s.trim().is_empty()) {
            Some(s) => Some(
                parse_instant(s, DayEnd::Start).map_err(|m| ApiError::bad_request(format!("created_after: {m}")))?,
            ),
            None => None,
        };
        let before = match self.created_before.as_deref().filter(|s| !s.trim().is_empty()) {
            Some(s) => {
                Some(parse_instant(s, DayEnd::End).map_err(|m| ApiError::bad_request(format!("created_before: {m}")))?)
            }
            None => None,
        };
        let search = self.search.filter(|s| !s.is_empty());
        if search.as_ref().is_some_and(|s| s.chars().count() > MAX_SEARCH_CHARS) {
            return Err(ApiError::bad_request(format!(
                "query parameter `search`: must be at most {MAX_SEARCH_CHARS} characters long"
            )));
        }
        Ok(ListQuery {
            page: self.page,
            limit: self.limit,
            sort_column,
            descending: self.sort_order != Some(SortOrder::Asc),
            search,
            created_after: after,
            created_before: before,
        })
    }
}

/// What one list endpoint adds to the shared parameters.
pub struct ListSpec {
    /// The column `sort_by` maps to.
    pub sort_column: &'static str,
    /// The names `fields` may list.
    pub fields: &'static [&'static str],
    /// What `include` may ask for.
    pub includes: Includes,
}

/// The related resources a list can include.
#[derive(Clone, Copy)]
pub enum Includes {
    /// `include=schema` adds each item's `schema: {id, name}`.
    Schema,
    /// Nothing: any `include` is a 400 naming the resource (e.g. `schemas`).
    Nothing(&'static str),
}

/// A list request whose parameters passed every check.
pub struct CheckedList {
    pub query: ListQuery,
    /// `None`: every field.
    pub fields: Option<Vec<String>>,
    /// `include=schema` was asked for.
    pub with_schema: bool,
}

impl CheckedList {
    /// Fetches the page with `fetch` (the rows and the total over all pages) off the async
    /// runtime; [`Page::json`] then writes it.
    pub async fn fetch<R: Send + 'static>(
        self,
        state: &Arc<AppState>,
        fetch: impl FnOnce(&mut Conn, &ListQuery, bool) -> Result<(Vec<R>, u64), ApiError> + Send + 'static,
    ) -> Result<Page<R>, ApiError> {
        let CheckedList { query, fields, with_schema } = self;
        let (rows, meta) = with_db(state, move |c| {
            let (rows, total) = fetch(c, &query, with_schema)?;
            Ok((rows, PageMeta::new(&query, total)))
        })
        .await?;
        Ok(Page { rows, meta: meta.into(), fields, with_schema })
    }
}

/// A page of rows read for a checked list request.
pub struct Page<R> {
    pub rows: Vec<R>,
    pub meta: Meta,
    /// `None`: every field.
    pub fields: Option<Vec<String>>,
    /// `include=schema` was asked for.
    pub with_schema: bool,
}

impl<R> Page<R> {
    /// The list's body, `{"data": [items], "meta": {...}}`, with each row written by
    /// `item(out, row, fields, with_schema)`: the item's keys in the order of its documented
    /// object, only those `fields` keeps.
    pub fn json<T>(&self, item: impl Fn(&mut JsonOut, &R, Fields<'_>, bool)) -> Result<ListJson<T>, ApiError> {
        let fields = Fields(self.fields.as_deref());
        // ~700 bytes an export item: one allocation for most pages
        let mut out = JsonOut::with_capacity(64 + 768 * self.rows.len());
        out.raw(b"{\"data\":[");
        for (i, row) in self.rows.iter().enumerate() {
            if i > 0 {
                out.raw(b",");
            }
            item(&mut out, row, fields, self.with_schema);
        }
        out.raw(b"],\"meta\":");
        out.serde(&self.meta);
        out.raw(b"}");
        match out.err {
            Some(e) => Err(ApiError::internal(e)),
            None => Ok(ListJson(out.buf, PhantomData)),
        }
    }
}

/// The 200 of a list endpoint, whose body [`Page::json`] writes, documented as `$ty` (as
/// `api_ok!` with `Json<$ty>` would document it).
#[macro_export]
macro_rules! api_list_ok {
    ($name:ident :: $variant:ident = $status:tt : $ty:ty, $desc:literal) => {
        #[derive(poem_openapi::ApiResponse)]
        pub enum $name {
            #[doc = $desc]
            #[oai(status = $status)]
            $variant($crate::api::list::ListJson<$ty>),
        }
    };
}

/// A list's JSON body, written straight from its rows ([`Page::json`]) rather than through a
/// `serde_json::Value` tree per item, and documented as the object `T` (`ExportList`, ...):
/// the OpenAPI document is the one `Json<T>` gives.
pub struct ListJson<T>(Vec<u8>, PhantomData<fn() -> T>);

impl<T: Type> Payload for ListJson<T> {
    const CONTENT_TYPE: &'static str = <Json<T> as Payload>::CONTENT_TYPE;

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: Type> IntoResponse for ListJson<T> {
    fn into_response(self) -> Response {
        Response::builder().header(header::CONTENT_TYPE, <Json<T> as Payload>::CONTENT_TYPE).body(self.0)
    }
}

/// Checks `fields`; `None` means every field. With `include=schema` the included `schema`
/// object is kept whatever `fields` says: asking for it and then dropping it makes no sense.
fn fields_param(param: Option<&str>, allowed: &[&str], keep_schema: bool) -> Result<Option<Vec<String>>, ApiError> {
    let param = param.filter(|p| !p.trim().is_empty());
    let mut fields = param.map(|p| parse_fields(p, allowed)).transpose().map_err(ApiError::bad_request)?;
    if let Some(f) = fields.as_mut().filter(|f| keep_schema && !f.iter().any(|n| n == "schema")) {
        f.push("schema".into());
    }
    Ok(fields)
}

/// Checks `include`; true when `schema` was asked for.
fn include_schema(param: Option<&str>) -> Result<bool, ApiError> {
    let inc = param.map(|p| parse_include(p, &["schema"])).transpose().map_err(ApiError::bad_request)?;
    Ok(inc.is_some_and(|v| v.iter().any(|s| s == "schema")))
}

pub fn default_page() -> u32 {
    1
}

pub fn default_limit() -> u32 {
    20
}

/// An item of type `T` that carries only the fields a list asked for (`fields=`). It is
/// documented as `T`; absent keys were left out on request.
pub struct Sparse<T>(Value, PhantomData<fn() -> T>);

impl<T: ToJSON> Sparse<T> {
    pub fn new(item: &T, fields: Option<&[String]>) -> Sparse<T> {
        let mut v = item.to_json().unwrap_or(Value::Null);
        if let (Some(fields), Value::Object(map)) = (fields, &mut v) {
            map.retain(|k, _| fields.iter().any(|f| f == k));
        }
        Sparse(v, PhantomData)
    }
}

impl<T: Type> Type for Sparse<T> {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> Cow<'static, str> {
        T::name()
    }
    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }
    fn register(registry: &mut Registry) {
        T::register(registry)
    }
    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        Some(self)
    }
    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(self.as_raw_value().into_iter())
    }
}

impl<T: Type> ToJSON for Sparse<T> {
    fn to_json(&self) -> Option<Value> {
        Some(self.0.clone())
    }
}

/// Writes the kept fields of the item as serde_json writes its `Value`.
impl<T> Serialize for Sparse<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<T: Type> ParseFromJSON for Sparse<T> {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        Ok(Sparse(value.unwrap_or_default(), PhantomData))
    }
}
