//! HTTP rules as pure functions: preconditions, ranges, response headers, content
//! types, forwarding headers.

pub mod conditional;
pub mod date;
pub mod forwarded;
pub mod headers;
pub mod mime;
pub mod range;
