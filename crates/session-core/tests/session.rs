//! Remix's own `Session` tests (`packages/session/src/lib/session.test.ts`), one Rust test
//! each, with Rust names.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use session_core::{Error, Session, SessionData, SessionId};

fn with_data(data: Value) -> Session {
    let data: SessionData = serde_json::from_value(data).unwrap();
    Session::from_data(SessionId::generate(), data)
}

#[test]
fn creates_a_new_session() {
    let session = Session::new();
    assert!(!session.id().as_str().is_empty());
    assert!(!session.is_destroyed());
    assert!(!session.is_dirty());
    assert_eq!(session.len(), 0);
    assert!(session.is_empty());
}

#[test]
fn creates_a_new_session_with_a_custom_id() {
    let session = Session::with_id(SessionId::parse("custom-id").unwrap());
    assert_eq!(session.id().as_str(), "custom-id");
}

#[test]
fn creates_a_new_session_with_initial_data() {
    let session = with_data(json!([{ "hello": "world" }, {}]));
    assert_eq!(session.len(), 1);
    assert_eq!(session.get::<String>("hello").unwrap().unwrap(), "world");
    assert!(!session.is_dirty());
}

#[test]
fn creates_a_new_session_with_initial_flash_data() {
    let session = with_data(json!([{}, { "hello": "world" }]));
    assert_eq!(session.get::<String>("hello").unwrap().unwrap(), "world");
    assert!(session.is_dirty(), "flash on load is consumed on save");
    assert_eq!(session.data(), SessionData::default());
}

#[test]
fn sets_and_gets_values() {
    let mut session = Session::new();
    assert!(!session.contains_key("hello"));
    assert_eq!(session.get::<String>("hello").unwrap(), None);
    assert!(!session.is_dirty());

    session.insert("hello", "world").unwrap();
    assert!(session.contains_key("hello"));
    assert_eq!(session.get::<String>("hello").unwrap().unwrap(), "world");
    assert!(session.is_dirty());

    assert_eq!(session.remove("hello").unwrap(), Some(json!("world")));
    assert!(!session.contains_key("hello"));
    assert_eq!(session.get::<String>("hello").unwrap(), None);
    assert!(session.is_dirty());
}

#[test]
fn sets_and_gets_values_with_complex_types() {
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct User {
        id: u32,
        name: String,
    }
    let mut session = with_data(json!([{ "user": { "id": 123, "name": "alice" } }, {}]));
    assert_eq!(
        session.get::<User>("user").unwrap().unwrap(),
        User {
            id: 123,
            name: "alice".into()
        }
    );
    session
        .insert(
            "user",
            User {
                id: 456,
                name: "bob".into(),
            },
        )
        .unwrap();
    assert_eq!(
        session.get::<User>("user").unwrap().unwrap(),
        User {
            id: 456,
            name: "bob".into()
        }
    );
    session
        .insert("nested", json!({ "a": [1, { "b": [true, null] }] }))
        .unwrap();
    assert_eq!(
        session.get_value("nested"),
        Some(&json!({ "a": [1, { "b": [true, null] }] }))
    );
}

#[test]
fn getting_a_value_of_the_wrong_type_is_an_error() {
    let mut session = Session::new();
    session.insert("count", "three").unwrap();
    let error = session.get::<u32>("count").unwrap_err();
    assert!(matches!(error, Error::Deserialize { ref key, .. } if key == "count"));
}

#[test]
fn unsets_values_when_set_to_null() {
    let mut session = Session::new();
    session.insert("hello", "world").unwrap();
    assert!(session.contains_key("hello"));
    session.insert("hello", Value::Null).unwrap();
    assert!(!session.contains_key("hello"));
    assert_eq!(session.get_value("hello"), None);
    assert!(session.is_dirty());
}

#[test]
fn unsets_values_when_set_to_none() {
    let mut session = Session::new();
    session.insert("hello", "world").unwrap();
    session.insert("hello", None::<String>).unwrap();
    assert!(!session.contains_key("hello"));
    assert!(session.is_dirty());
}

#[test]
fn regenerates_the_session_id() {
    let mut session = Session::new();
    let original = session.id().clone();
    assert!(!session.is_dirty());
    session.regenerate_id(false).unwrap();
    assert_ne!(session.id(), &original);
    assert_eq!(session.delete_id(), None);
    assert!(session.is_dirty());
}

#[test]
fn deletes_the_old_session_id() {
    let mut session = Session::new();
    let original = session.id().clone();
    session.regenerate_id(true).unwrap();
    assert_ne!(session.id(), &original);
    assert_eq!(session.delete_id(), Some(&original));
    assert!(session.is_dirty());
}

#[test]
fn destroys_the_session() {
    let mut session = Session::new();
    assert!(!session.is_destroyed());
    session.destroy();
    assert!(session.is_destroyed());
}

#[test]
fn deletes_the_original_session_when_the_session_id_is_regenerated_more_than_once() {
    let mut session = Session::new();
    let original = session.id().clone();
    session.regenerate_id(true).unwrap();
    let second = session.id().clone();
    assert_eq!(session.delete_id(), Some(&original));
    session.regenerate_id(true).unwrap();
    assert_ne!(session.id(), &second);
    assert_ne!(session.id(), &original);
    assert_eq!(session.delete_id(), Some(&original));
}

mod a_destroyed_session {
    use super::*;

    fn destroyed() -> Session {
        let mut session = Session::new();
        session.insert("hello", "world").unwrap();
        session.destroy();
        session
    }

    #[test]
    fn flash_is_an_error() {
        assert!(
            destroyed()
                .flash("hello", "world")
                .unwrap_err()
                .is_destroyed()
        );
    }

    #[test]
    fn regenerate_id_is_an_error() {
        assert!(destroyed().regenerate_id(false).unwrap_err().is_destroyed());
    }

    #[test]
    fn insert_is_an_error() {
        assert!(
            destroyed()
                .insert("hello", "world")
                .unwrap_err()
                .is_destroyed()
        );
    }

    #[test]
    fn remove_is_an_error() {
        assert!(destroyed().remove("hello").unwrap_err().is_destroyed());
    }

    #[test]
    fn get_returns_nothing() {
        let session = destroyed();
        assert_eq!(session.get::<String>("hello").unwrap(), None);
        assert_eq!(session.len(), 0);
    }

    #[test]
    fn contains_key_is_false() {
        assert!(!destroyed().contains_key("hello"));
    }

    #[test]
    fn data_is_empty() {
        assert_eq!(destroyed().data(), SessionData::default());
    }
}

#[test]
fn values_shadow_flash_values_of_the_same_key() {
    let session = with_data(json!([{ "k": "value" }, { "k": "flash" }]));
    assert_eq!(session.get::<String>("k").unwrap().unwrap(), "value");
    assert_eq!(session.len(), 2);
}
