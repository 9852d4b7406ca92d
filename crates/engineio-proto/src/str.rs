use bytes::Bytes;
use bytestring::ByteString;
use std::fmt;
use std::ops::Deref;

/// An immutable UTF-8 string backed by [`Bytes`]: cloning it is a reference count increment, so
/// one encoded broadcast can be shared by every receiver. UTF-8 is checked once, when it is
/// made (`bytestring` keeps that promise, so reading it costs nothing).
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Str(ByteString);

impl Str {
    /// An empty string.
    pub const fn new() -> Self {
        Str(ByteString::new())
    }

    /// A string from a `'static` literal, without allocating.
    pub const fn from_static(s: &'static str) -> Self {
        Str(ByteString::from_static(s))
    }

    /// Checks that `bytes` is UTF-8 and wraps it.
    pub fn from_utf8(bytes: Bytes) -> Result<Self, std::str::Utf8Error> {
        ByteString::try_from(bytes).map(Str)
    }

    /// The string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The underlying bytes (UTF-8).
    pub fn as_bytes(&self) -> &Bytes {
        self.0.as_bytes()
    }

    /// Converts into the underlying bytes (UTF-8).
    pub fn into_bytes(self) -> Bytes {
        self.0.into_bytes()
    }

    /// A sub-string sharing the same buffer. `range` must fall on character boundaries of
    /// `self`; otherwise `None`.
    pub fn slice(&self, range: std::ops::Range<usize>) -> Option<Str> {
        let sub = self.as_str().get(range)?;
        Some(Str(self.0.slice_ref(sub)))
    }
}

impl Deref for Str {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl From<String> for Str {
    fn from(s: String) -> Self {
        Str(ByteString::from(s))
    }
}

impl From<&'static str> for Str {
    fn from(s: &'static str) -> Self {
        Str::from_static(s)
    }
}

impl fmt::Debug for Str {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Str {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
