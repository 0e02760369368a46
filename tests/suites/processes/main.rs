//! The bundled partner processes of `workflows/`, each end to end under the real
//! `gridflow serve --sandbox`: deployed from its file, driven through the HTTP API as its
//! actors would, with the outcome asserted in the simulators' records, the distribution
//! ledger and history. One module per process; every case runs on SQLite and PostgreSQL.

mod p01_publish_approved_assets;
mod p02_partner_media_request;
mod p03_partner_issue_loop;
mod p04_campaign_kit;
mod p05_campaign_review;
mod p06_version_change_notice;
mod p07_segmented_libraries;
mod p08_launch_coordination;
mod p09_delivery_audit_report;
mod p10_compliance_versioning;
mod p11_partner_onboarding;
mod p12_localisation_request;
mod p13_rights_expiry_recall;
mod p14_access_request;
mod p15_metadata_sync;
mod p16_heritage_annotations;
mod p17_broadcast_distribution;
mod sandbox_clock;
