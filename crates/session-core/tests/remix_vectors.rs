//! The cookie vectors produced by Remix's own packages (a copy of `shared/vectors`, kept in `tests/vectors/`), checked against
//! `CookieSigner`. The file is embedded at build time, so a missing file fails the build.

use serde::Deserialize;
use session_core::CookieSigner;

const VECTORS: &str = include_str!("vectors/remix-cookie-and-keys.json");

#[derive(Deserialize)]
struct Vectors {
    signed: Vec<Signed>,
    rejected: Vec<Rejected>,
    data: Vec<Data>,
}

#[derive(Deserialize)]
struct Signed {
    secrets: Vec<String>,
    value: String,
    cookie_value: String,
    parses_back_to: String,
    note: Option<String>,
}

#[derive(Deserialize)]
struct Rejected {
    secrets: Vec<String>,
    cookie_value: String,
}

#[derive(Deserialize)]
struct Data {
    stored_json: String,
}

fn vectors() -> Vectors {
    serde_json::from_str(VECTORS).expect("vector file is valid JSON")
}

#[test]
fn every_signed_vector_encodes_exactly_and_parses_back() {
    let vectors = vectors();
    assert!(vectors.signed.len() >= 9);
    for case in vectors.signed {
        let signer = CookieSigner::new(&case.secrets).unwrap();
        if case.note.is_none() {
            assert_eq!(
                signer.sign(&case.value),
                case.cookie_value,
                "{}",
                case.value
            );
        }
        let verified = signer
            .verify(&case.cookie_value)
            .unwrap_or_else(|| panic!("{} should verify", case.cookie_value));
        assert_eq!(verified.value(), case.parses_back_to);
    }
}

#[test]
fn cookie_signed_with_an_old_secret_verifies_and_asks_for_reissue() {
    let case = vectors()
        .signed
        .into_iter()
        .find(|case| case.note.is_some())
        .expect("the rotation vector");
    let signer = CookieSigner::new(&case.secrets).unwrap();
    assert!(
        signer
            .verify(&case.cookie_value)
            .unwrap()
            .signed_with_old_secret()
    );
}

#[test]
fn every_rejected_vector_is_rejected() {
    let vectors = vectors();
    assert!(vectors.rejected.len() >= 11);
    for case in vectors.rejected {
        let signer = CookieSigner::new(&case.secrets).unwrap();
        assert_eq!(
            signer.verify(&case.cookie_value),
            None,
            "{}",
            case.cookie_value
        );
    }
}

#[test]
fn stored_data_vector_round_trips_byte_for_byte() {
    for case in vectors().data {
        let data = session_core::SessionData::from_json(case.stored_json.as_bytes()).unwrap();
        assert_eq!(data.to_json().unwrap(), case.stored_json.as_bytes());
    }
}

#[test]
fn session_data_written_like_remix_matches_the_vector() {
    let mut session = session_core::Session::new();
    session.insert("count", 3).unwrap();
    session
        .insert(
            "user",
            serde_json::json!({ "name": "mj", "roles": ["admin"] }),
        )
        .unwrap();
    session.flash("message", "welcome").unwrap();
    assert_eq!(
        session.data().to_json().unwrap(),
        vectors().data[0].stored_json.as_bytes()
    );
}

#[test]
fn stored_objects_keep_insertion_order_as_javascript_does() {
    let mut session = session_core::Session::new();
    session.insert("zeta", 1).unwrap();
    session.insert("alpha", 2).unwrap();
    session.insert("mid", 3).unwrap();
    session.remove("alpha").unwrap();
    session.insert("zeta", 4).unwrap();
    session.insert("alpha", 5).unwrap();
    // JSON.stringify of a Map-backed object after the same steps.
    assert_eq!(
        session.data().to_json().unwrap(),
        br#"[{"zeta":4,"mid":3,"alpha":5},{}]"#
    );
    let loaded = session_core::SessionData::from_json(br#"[{"b":1,"a":2},{}]"#).unwrap();
    assert_eq!(loaded.to_json().unwrap(), br#"[{"b":1,"a":2},{}]"#);
}
