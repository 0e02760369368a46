//! The bundled partner processes of `workflows/`, each end to end under the real
//! `gridflow serve --sandbox`: deployed from its file, driven through the HTTP API as its
//! actors would, with the outcome asserted in the simulators' records, the distribution
//! ledger and history. One module per process; every case runs on SQLite and PostgreSQL.

mod p09_delivery_audit_report;
mod p17_broadcast_distribution;
mod sandbox_clock;
