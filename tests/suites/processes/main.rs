//! The bundled partner processes of `workflows/`, each end to end under the real
//! `gridflow serve --sandbox`: deployed from its file, driven through the HTTP API as its
//! actors would, with the outcome asserted in the simulators' records, the distribution
//! ledger and history. One module per process; every case runs on SQLite and PostgreSQL.

mod p01_publish_approved_assets;
mod p10_compliance_versioning;
mod p12_localisation_request;
mod sandbox_clock;
