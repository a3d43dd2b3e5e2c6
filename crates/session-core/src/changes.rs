//! The changes a session went through since it was loaded.

use crate::{Session, SessionData};

/// What a [`Session`] went through since it was created or loaded: the keys inserted or
/// removed, the flash values set, whether the loaded flash was consumed, whether the id was
/// regenerated, whether it was destroyed.
///
/// A storage that detects a concurrent write (for instance with memcached's CAS) uses
/// [`rebase`](Self::rebase) to re-apply exactly these changes on top of what the other
/// request stored, instead of overwriting it.
///
/// # Examples
///
/// ```
/// use session_core::{Session, SessionData, SessionId};
/// use serde_json::json;
///
/// let id = SessionId::parse("cart-owner").unwrap();
/// let loaded: SessionData = serde_json::from_value(json!([{ "a": 1 }, {}]))?;
///
/// // This request adds "b"...
/// let mut session = Session::from_data(id, loaded);
/// session.insert("b", 2)?;
///
/// // ...while another request stored "c" in the meantime.
/// let theirs: SessionData = serde_json::from_value(json!([{ "a": 1, "c": 3 }, {}]))?;
/// let merged = session.changes().rebase(theirs);
/// assert_eq!(serde_json::to_value(&merged)?, json!([{ "a": 1, "b": 2, "c": 3 }, {}]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Changes<'a> {
    session: &'a Session,
}

impl<'a> Changes<'a> {
    pub(crate) fn new(session: &'a Session) -> Self {
        Self { session }
    }

    /// The keys inserted or removed by this request, sorted.
    pub fn keys(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.session.touched_keys().iter().map(String::as_str)
    }

    /// The keys flashed for the next request.
    pub fn flashed(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.session.next_flash().keys().map(String::as_str)
    }

    /// Whether this request read (and so consumes, on save) flash values left by an earlier
    /// request.
    pub fn consumed_flash(&self) -> bool {
        !self.session.loaded_flash().is_empty()
    }

    /// Whether the id was regenerated.
    pub fn id_regenerated(&self) -> bool {
        self.session.id() != self.session.original_id()
    }

    /// Whether the session was destroyed.
    pub fn destroyed(&self) -> bool {
        self.session.is_destroyed()
    }

    /// Whether nothing at all changed.
    pub fn is_empty(&self) -> bool {
        self.session.touched_keys().is_empty()
            && self.session.next_flash().is_empty()
            && !self.consumed_flash()
            && !self.id_regenerated()
            && !self.destroyed()
    }

    /// Re-applies this request's changes on top of `theirs`, the data another request stored
    /// after this session was loaded:
    ///
    /// - each key this request inserted or removed takes this request's value (for a key both
    ///   requests changed, this later save wins);
    /// - keys this request did not touch keep the other writer's values;
    /// - flash values this request consumed are removed, unless the other writer flashed a
    ///   different value under the same key;
    /// - flash values this request set are added.
    ///
    /// A destroyed session rebases to empty data.
    pub fn rebase(&self, mut theirs: SessionData) -> SessionData {
        if self.destroyed() {
            return SessionData::default();
        }
        let values = self.session.values();
        for key in self.session.touched_keys() {
            match values.get(key) {
                Some(value) => {
                    theirs.values.insert(key.clone(), value.clone());
                }
                None => {
                    theirs.values.shift_remove(key);
                }
            }
        }
        for (key, consumed) in self.session.loaded_flash() {
            if theirs.flash.get(key) == Some(consumed) {
                theirs.flash.shift_remove(key);
            }
        }
        for (key, value) in self.session.next_flash() {
            theirs.flash.insert(key.clone(), value.clone());
        }
        theirs
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::{Session, SessionData, SessionId};

    fn data(value: serde_json::Value) -> SessionData {
        serde_json::from_value(value).unwrap()
    }

    fn loaded(value: serde_json::Value) -> Session {
        Session::from_data(SessionId::parse("id").unwrap(), data(value))
    }

    #[test]
    fn untouched_session_has_no_changes() {
        let session = loaded(json!([{ "a": 1 }, {}]));
        assert!(session.changes().is_empty());
    }

    #[test]
    fn records_inserted_and_removed_keys() {
        let mut session = loaded(json!([{ "a": 1, "b": 2 }, {}]));
        session.insert("c", 3).unwrap();
        session.remove("a").unwrap();
        session.insert("b", serde_json::Value::Null).unwrap();
        let keys: Vec<_> = session.changes().keys().collect();
        assert_eq!(keys, ["a", "b", "c"]);
    }

    #[test]
    fn rebase_keeps_the_other_writers_keys_and_applies_ours() {
        let mut session = loaded(json!([{ "a": 1, "b": 2 }, {}]));
        session.insert("a", 10).unwrap();
        session.remove("b").unwrap();
        let merged = session
            .changes()
            .rebase(data(json!([{ "a": 5, "b": 2, "x": 9 }, { "f": 1 }])));
        assert_eq!(
            serde_json::to_value(merged).unwrap(),
            json!([{ "a": 10, "x": 9 }, { "f": 1 }])
        );
    }

    #[test]
    fn rebase_consumes_only_the_flash_this_request_read() {
        let mut session = loaded(json!([{}, { "old": "read", "kept": "same" }]));
        session.flash("mine", "next").unwrap();
        assert!(session.changes().consumed_flash());
        let merged = session
            .changes()
            .rebase(data(json!([{}, { "old": "read", "kept": "re-flashed" }])));
        assert_eq!(
            serde_json::to_value(merged).unwrap(),
            json!([{}, { "kept": "re-flashed", "mine": "next" }])
        );
    }

    #[test]
    fn rebase_of_a_destroyed_session_is_empty() {
        let mut session = loaded(json!([{ "a": 1 }, {}]));
        session.destroy();
        assert!(session.changes().destroyed());
        let merged = session.changes().rebase(data(json!([{ "b": 1 }, {}])));
        assert_eq!(merged, SessionData::default());
    }

    #[test]
    fn regenerated_id_is_a_change() {
        let mut session = loaded(json!([{}, {}]));
        session.regenerate_id(false).unwrap();
        assert!(session.changes().id_regenerated());
        assert!(!session.changes().is_empty());
    }
}
