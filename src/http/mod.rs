//! HTTP rules as pure functions: preconditions, ranges, response headers, content
//! types.

pub mod conditional;
pub mod headers;
pub mod mime;
pub mod range;
