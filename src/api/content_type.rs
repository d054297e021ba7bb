//! The `Content-Type` a request body must have. poem-openapi's own check answers a wrong or
//! missing one with "the `Content-Type` requested by the client is not supported"; ours says
//! what to send instead (`Content-Type: application/json`, or `application/x-ndjson` for the
//! bulk upload). [`body_extractor!`] is poem-openapi's `impl_apirequest_for_payload!` with
//! that answer.

/// Implements `ApiExtractor` for a request payload type: the body is read only when the
/// request's `Content-Type` passes the payload's `check_content_type`; otherwise the answer is
/// [`ApiError::unsupported_media_type`](crate::error::ApiError::unsupported_media_type) with
/// `$what` (how the body is described to the client) and the payload's `CONTENT_TYPE`.
macro_rules! body_extractor {
    ($ty:ty, $what:expr $(, $($bounds:tt)*)?) => {
        impl<'a, $($($bounds)*)?> poem_openapi::ApiExtractor<'a> for $ty {
            const TYPES: &'static [poem_openapi::ApiExtractorType] =
                &[poem_openapi::ApiExtractorType::RequestObject];

            type ParamType = ();
            type ParamRawType = ();

            fn register(registry: &mut poem_openapi::registry::Registry) {
                <Self as poem_openapi::payload::Payload>::register(registry);
            }

            fn request_meta() -> Option<poem_openapi::registry::MetaRequest> {
                Some(poem_openapi::registry::MetaRequest {
                    description: None,
                    content: vec![poem_openapi::registry::MetaMediaType {
                        content_type: <Self as poem_openapi::payload::Payload>::CONTENT_TYPE,
                        schema: <Self as poem_openapi::payload::Payload>::schema_ref(),
                    }],
                    required: <Self as poem_openapi::payload::ParsePayload>::IS_REQUIRED,
                })
            }

            async fn from_request(
                request: &'a poem::Request,
                body: &mut poem::RequestBody,
                _param_opts: poem_openapi::ExtractParamOptions<Self::ParamType>,
            ) -> poem::Result<Self> {
                let sent = request.content_type();
                if sent.is_some_and(<Self as poem_openapi::payload::Payload>::check_content_type) {
                    <Self as poem_openapi::payload::ParsePayload>::from_request(request, body).await
                } else {
                    let expected = <Self as poem_openapi::payload::Payload>::CONTENT_TYPE;
                    // `application/json; charset=utf-8` is documented; the essence is what to send
                    let expected = expected.split(';').next().unwrap_or(expected);
                    Err($crate::error::ApiError::unsupported_media_type($what, expected, sent).into())
                }
            }
        }
    };
}

pub(crate) use body_extractor;
