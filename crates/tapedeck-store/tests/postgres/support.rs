//! Targets resolved with an environment of the test's own (the process's is shared by every
//! test, and changing it is not safe).

use std::collections::HashMap;

use tapedeck_store::pg::PgTarget;
use tapedeck_store::{StoreError, pg};
use tapedeck_testkit::postgres::TestDb;

/// Resolves `url` as if the environment held exactly `vars`.
pub fn target_with(url: &str, vars: &[(&str, &str)]) -> Result<PgTarget, StoreError> {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    PgTarget::resolve(url, &move |name| vars.get(name).cloned())
}

/// The test database as the superuser, with no password anywhere.
pub fn target(db: &TestDb) -> PgTarget {
    target_with(&db.url(), &[]).unwrap()
}

/// The test database, migrated to the current schema.
pub fn migrated(db: &TestDb) -> PgTarget {
    let target = target(db);
    pg::migrate(&target).unwrap();
    target
}
