//! The behaviour suite every Waybill store backend runs against itself.
//!
//! - [`cases`] holds one async function per `**Behavior:**` bullet of the
//!   traits in `waybill_core::store`.
//! - [`store_suite!`] expands every case into a named `#[test]` in the calling
//!   crate, so `cargo test` lists `behaviour::create_existing_version_conflicts`
//!   once per backend.
//! - [`model`] runs random operation sequences against a backend and against
//!   `waybill_core::memory::MemoryStore` and demands identical answers.
//! - [`blobs`] and [`blob_suite!`] do the same for `BlobStore`s.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use waybill_core::store::{BlobStore, Store};

pub mod blobs;
pub mod cases;
pub mod fixtures;
pub mod model;

/// Opens (or re-opens) a store in a directory.
pub type Opener = dyn Fn(&Path) -> Arc<dyn Store> + Send + Sync;

/// Opens (or re-opens) a blob store in a directory.
pub type BlobOpener = dyn Fn(&Path) -> Arc<dyn BlobStore> + Send + Sync;

/// Runs an async case to completion on a fresh two-worker runtime, like the server's.
pub fn run<F: Future<Output = ()>>(case: F) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(case)
}

/// A fresh temporary directory.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

/// Expands the behaviour suite into one `#[test]` per case for a backend.
///
/// `$open` is an expression of type `fn(&Path) -> Arc<dyn Store>`.
#[macro_export]
macro_rules! store_suite {
    ($open:expr) => {
        $crate::store_suite!(@cases $open;
            ping_answers,
            settings_round_trip,
            setting_or_insert_first_wins,
            settings_list_by_prefix_and_delete,
            create_then_get_round_trips,
            get_unknown_version_is_none,
            create_existing_version_conflicts,
            update_applies_and_keeps_creation_order,
            update_aborted_by_domain_writes_nothing,
            update_refuses_rename,
            update_unknown_version_is_not_found,
            list_versions_newest_first_and_paged,
            latest_version_is_created_last,
            delete_version_and_bundle,
            concurrent_creates_have_one_winner,
            concurrent_updates_lose_nothing,
            sites_put_replace_list_delete,
            site_name_clash_conflicts,
            default_key_is_exclusive,
            tracker_ids_increase_and_are_never_reused,
            tracker_update_aborted_writes_nothing,
            trackers_filter_by_bundle_and_version,
            users_create_put_list_delete,
            tokens_round_trip_in_order,
            everything_survives_reopen,
            repositories_create_list_delete,
            put_file_creates_parents_and_replaces,
            put_file_into_unknown_repository_is_not_found,
            put_file_conflicts_write_nothing,
            children_are_direct_and_ordered,
            delete_item_removes_exactly_its_subtree,
            property_updates_move_the_index,
            find_items_honours_every_hint,
            content_refs_follow_replacements_and_deletes,
            builds_round_trip,
            commit_files_is_all_or_nothing,
            builds_list_by_name_in_order,
            remove_files_removes_matching_content_only,
        );
        #[test]
        fn model_matches_memory_reference() {
            $crate::model::check(&$open, 64);
        }
    };
    (@cases $open:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::run($crate::cases::$case(&$open));
            }
        )*
    };
}

/// Expands the blob-store suite into one `#[test]` per case.
///
/// `$open` is an expression of type `fn(&Path) -> Arc<dyn BlobStore>`.
#[macro_export]
macro_rules! blob_suite {
    ($open:expr) => {
        $crate::blob_suite!(@cases $open;
            blob_write_commit_read,
            blob_digest_mismatch_is_never_visible,
            blob_dropped_writer_leaves_nothing,
            blob_same_content_twice_keeps_one,
            blob_delete,
            blob_read_unknown_is_not_found,
            blob_any_claimed_checksum_must_match,
            blob_vouched_writer_still_verifies_sha256,
            blob_list_shows_committed_blobs,
        );
    };
    (@cases $open:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::run($crate::blobs::$case(&$open));
            }
        )*
    };
}
