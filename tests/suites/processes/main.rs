//! The bundled partner processes of `workflows/`, each end to end under the real
//! `gridflow serve --sandbox`: deployed from its file, driven through the HTTP API as its
//! actors would, with the outcome asserted in the simulators' records, the distribution
//! ledger and history. One module per process; every case runs on SQLite and PostgreSQL.

mod p05_campaign_review;
mod p07_segmented_libraries;
mod p15_metadata_sync;
mod p16_heritage_annotations;
mod sandbox_clock;
