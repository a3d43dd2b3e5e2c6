//! The storable form of a session.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A JSON object: the values, or the flash values, of a session.
pub type Values = serde_json::Map<String, serde_json::Value>;

/// What a storage keeps for a session: its values and the flash values for the next request.
///
/// It serializes as the JSON array `[values, flash]`, exactly as Remix stores `session.data`,
/// so that a Remix app and this crate can read each other's sessions.
///
/// # Examples
///
/// ```
/// use session_core::SessionData;
///
/// let data = SessionData::from_json(br#"[{"count":3},{"message":"welcome"}]"#)?;
/// assert_eq!(data.values["count"], 3);
/// assert_eq!(data.flash["message"], "welcome");
/// assert_eq!(data.to_json()?, br#"[{"count":3},{"message":"welcome"}]"#);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct SessionData {
    /// Values that stay until they are removed.
    pub values: Values,
    /// Values for the next request only.
    pub flash: Values,
}

impl SessionData {
    /// Builds session data from its two parts.
    pub fn new(values: Values, flash: Values) -> Self {
        Self { values, flash }
    }

    /// Encodes as the JSON array `[values, flash]`.
    ///
    /// # Errors
    ///
    /// Only if serde fails to write JSON, which it does not do for JSON objects.
    pub fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }

    /// Decodes the JSON array `[values, flash]`.
    ///
    /// # Errors
    ///
    /// When the input is not a JSON array of exactly two objects.
    pub fn from_json(json: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(json)
    }
}

impl Serialize for SessionData {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        (&self.values, &self.flash).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for SessionData {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (values, flash) = <(Values, Values)>::deserialize(deserializer)?;
        Ok(Self { values, flash })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_anything_but_a_pair_of_objects() {
        for bad in [
            &b"{}"[..],
            b"[]",
            b"[{}]",
            b"[{},{},{}]",
            b"[1,{}]",
            b"null",
            b"",
            b"[{},{}",
        ] {
            assert!(SessionData::from_json(bad).is_err(), "{bad:?}");
        }
    }
}
