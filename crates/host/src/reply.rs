//! The reply CloudEvent of a handled event, in the binary content mode.
//!
//! The CloudEvents SDK writes the event (the `ce-*` headers, `content-type`, the body) through
//! its HTTP serializer (`cloudevents::binding::http_0_2`) into any [`Builder`]; this module's
//! builder is actix-web's response. The SDK's own actix binding does the same, but enabling
//! it turns on all of actix-web's default features (brotli and zstd compression, cookies,
//! HTTP/2) in every crate that links the host, built in CI for nothing the functions serve
//! (docs/RELIABILITY.md, "CI: where its time goes").

use crate::function::{Function, Reply};
use crate::problem::Problem;
use actix_web::http::header::HeaderValue;
use actix_web::{HttpResponse, HttpResponseBuilder};
use cloudevents::binding::http_0_2::{Builder, Serializer};
use cloudevents::message::BinaryDeserializer;
use cloudevents::{EventBuilder, EventBuilderV10};

/// `200 OK` with the reply event `<REPLY_PREFIX>.<outcome>` for the event `event_id`; a
/// `500` problem in the (unexpected) case that the event cannot be built or written.
pub fn reply_response<F: Function>(event_id: &str, reply: Reply) -> HttpResponse {
    let word = reply.outcome.word();
    let event = EventBuilderV10::new()
        .id(reply.id_for(event_id))
        .ty(format!("{}.{word}", F::REPLY_PREFIX))
        .source(format!("/todo/{}", F::NAME))
        .time(chrono::Utc::now())
        .data("application/json", reply.data_for(event_id))
        .build();
    let written = event.map_err(|e| e.to_string()).and_then(|event| {
        BinaryDeserializer::deserialize_binary(event, Serializer::new(Response(HttpResponse::Ok())))
            .map_err(|e| e.to_string())
    });
    written.unwrap_or_else(|e| {
        tracing::error!("reply event could not be written: {e}");
        actix_web::ResponseError::error_response(&Problem::internal())
    })
}

/// actix-web's response builder as the SDK's HTTP [`Builder`].
struct Response(HttpResponseBuilder);

impl Builder<HttpResponse> for Response {
    fn header(&mut self, key: &str, value: HeaderValue) {
        self.0.insert_header((key, value));
    }

    fn body(&mut self, bytes: Vec<u8>) -> cloudevents::message::Result<HttpResponse> {
        Ok(self.0.body(bytes))
    }

    fn finish(&mut self) -> cloudevents::message::Result<HttpResponse> {
        Ok(self.0.finish())
    }
}
