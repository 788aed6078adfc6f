//! lanes-net: authenticated QUIC links between validators. Each validator's TLS certificate is
//! self-signed with its validator key and accepted only if that key is in genesis; messages are
//! length-delimited frames with a hard size limit.
//!
//! Not built yet: this crate is the subject of issue 5. It depends only on `lanes-types`.
