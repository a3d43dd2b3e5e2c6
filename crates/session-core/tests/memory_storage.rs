//! Remix's storage scenarios run against `MemoryStorage`.

use session_core::MemoryStorage;

session_core::storage_suite! {
    default: MemoryStorage::new(),
    unknown_ids: MemoryStorage::new().use_unknown_ids(true),
}
