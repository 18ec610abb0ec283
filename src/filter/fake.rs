//! A [`Host`] for unit tests: the request is built with builder methods, any host call can be
//! made to fail, and what the filter did (headers, replies, log lines, host calls) can be read
//! back.
//!
//! Host builds with the `testing` feature expose it too, for the fuzz targets in `fuzz/`; the
//! helpers that fail a test by panicking (`one`, `reply`) stay in unit tests.

use std::cell::{Cell, RefCell};
use std::fmt;

use log::Level;

use super::{Host, HostError};

/// A local reply the filter sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u32,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
}

impl Reply {
    pub fn body_text(&self) -> &str {
        self.body
            .as_deref()
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or_default()
    }
}

#[derive(Debug, Default)]
pub struct FakeHost {
    /// Request headers in order; a name may repeat, as on the wire.
    headers: RefCell<Vec<(String, Vec<u8>)>>,
    properties: Vec<(String, Vec<u8>)>,
    /// Host calls that fail, named as [`FakeHost::failing`] says.
    failing: Vec<String>,
    replies: RefCell<Vec<Reply>>,
    logs: RefCell<Vec<(Level, String)>>,
    /// Host calls made, log lines not counted (they cost one only when Envoy logs the level).
    calls: Cell<usize>,
    /// The filter's counters, by name, as incremented.
    counters: RefCell<Vec<String>>,
}

impl FakeHost {
    pub fn new() -> Self {
        Self::default()
    }

    /// A request header; call again with the same name for a repeated header.
    pub fn with_header(mut self, name: &str, value: impl Into<Vec<u8>>) -> Self {
        self.headers
            .get_mut()
            .push((name.to_string(), value.into()));
        self
    }

    /// A request with this method and path.
    pub fn with_request(self, method: &str, path: impl Into<Vec<u8>>) -> Self {
        self.with_header(":method", method)
            .with_header(":path", path)
    }

    /// The verified peer certificate's URI SANs, as Envoy gives them.
    pub fn with_peer(self, uri_san: impl Into<Vec<u8>>) -> Self {
        self.with_property(&super::PEER_URI_SAN, uri_san)
    }

    pub fn with_property(mut self, path: &[&str], value: impl Into<Vec<u8>>) -> Self {
        self.properties.push((path.join("."), value.into()));
        self
    }

    /// Makes one host call fail: `get <header>`, `set <header>`, `remove <header>`,
    /// `property <a.b>` or `reply`.
    pub fn failing(mut self, call: &str) -> Self {
        self.failing.push(call.to_string());
        self
    }

    /// Every value of a request header, as text, in order.
    pub fn header(&self, name: &str) -> Vec<String> {
        self.headers
            .borrow()
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .collect()
    }

    /// The one value of a request header; fails the test if it has none or several.
    #[cfg(test)]
    pub fn one(&self, name: &str) -> String {
        match self.header(name).as_slice() {
            [one] => one.clone(),
            other => panic!("{name}: {other:?}"),
        }
    }

    pub fn replies(&self) -> Vec<Reply> {
        self.replies.borrow().clone()
    }

    /// The one reply sent; fails the test if there is none or several.
    #[cfg(test)]
    pub fn reply(&self) -> Reply {
        match self.replies().as_slice() {
            [one] => one.clone(),
            other => panic!("replies: {other:?}"),
        }
    }

    pub fn logs(&self) -> Vec<(Level, String)> {
        self.logs.borrow().clone()
    }

    /// The counters incremented, in order.
    pub fn counted(&self) -> Vec<String> {
        self.counters.borrow().clone()
    }

    pub fn host_calls(&self) -> usize {
        self.calls.get()
    }

    fn call(&self, name: &str) -> Result<(), HostError> {
        self.calls.set(self.calls.get() + 1);
        if self.failing.iter().any(|f| f == name) {
            return Err(HostError("InternalFailure".into()));
        }
        Ok(())
    }
}

impl Host for FakeHost {
    fn request_header(&self, name: &str) -> Result<Option<Vec<u8>>, HostError> {
        self.call(&format!("get {name}"))?;
        // Envoy gives the first value of a repeated header.
        Ok(self
            .headers
            .borrow()
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone()))
    }

    fn remove_request_header(&self, name: &str) -> Result<(), HostError> {
        self.call(&format!("remove {name}"))?;
        self.headers.borrow_mut().retain(|(n, _)| n != name);
        Ok(())
    }

    fn set_request_header(&self, name: &str, value: &str) -> Result<(), HostError> {
        self.call(&format!("set {name}"))?;
        let mut headers = self.headers.borrow_mut();
        headers.retain(|(n, _)| n != name);
        headers.push((name.to_string(), value.as_bytes().to_vec()));
        Ok(())
    }

    fn property(&self, path: &[&str]) -> Result<Option<Vec<u8>>, HostError> {
        let path = path.join(".");
        self.call(&format!("property {path}"))?;
        Ok(self
            .properties
            .iter()
            .find(|(p, _)| *p == path)
            .map(|(_, v)| v.clone()))
    }

    fn send_reply(
        &self,
        status: u32,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<(), HostError> {
        self.call("reply")?;
        self.replies.borrow_mut().push(Reply {
            status,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: body.map(<[u8]>::to_vec),
        });
        Ok(())
    }

    fn log(&self, level: Level, message: fmt::Arguments<'_>) {
        self.logs.borrow_mut().push((level, message.to_string()));
    }

    fn count(&self, name: &str) {
        // One host call once the counter is defined (the first time costs a second one).
        self.calls.set(self.calls.get() + 1);
        self.counters.borrow_mut().push(name.to_string());
    }
}
