//! Property tests: verifying never panics, and every input is either rejected or round-trips.

use proptest::prelude::*;
use session_core::CookieSigner;

fn signer() -> CookieSigner {
    CookieSigner::new(["new-secret", "old-secret"]).unwrap()
}

proptest! {
    #[test]
    fn arbitrary_strings_are_rejected_or_round_trip(input in any::<String>()) {
        let signer = signer();
        if let Some(verified) = signer.verify(&input) {
            // Anything accepted must be exactly what signing its value produces.
            prop_assert_eq!(signer.sign(verified.value()), input);
        }
    }

    #[test]
    fn single_byte_mutations_of_valid_cookies_are_rejected_or_round_trip(
        value in "\\PC{1,64}",
        index in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let signer = signer();
        let cookie = signer.sign(&value);
        let mut bytes = cookie.clone().into_bytes();
        let at = index.index(bytes.len());
        bytes[at] = byte;
        let Ok(mutated) = String::from_utf8(bytes) else {
            // Not a string at all: cookies reach the signer as `&str` only.
            return Ok(());
        };
        if let Some(verified) = signer.verify(&mutated) {
            prop_assert_eq!(&mutated, &cookie, "only the unmodified cookie verifies");
            prop_assert_eq!(verified.value(), value.as_str());
        } else {
            prop_assert_ne!(&mutated, &cookie);
        }
    }

    #[test]
    fn every_value_round_trips(value in any::<String>()) {
        let signer = signer();
        let verified = signer.verify(&signer.sign(&value)).expect("own signature verifies");
        prop_assert_eq!(verified.value(), value.as_str());
    }
}
