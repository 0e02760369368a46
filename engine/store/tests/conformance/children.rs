//! Child links: written with the children's rows, read back under their parent with the
//! children's statuses, ordered by step, item and attempt; a link written again stays.

use std::sync::Arc;

use gridflow_core::{InstanceStatus, StepId};
use gridflow_store::{Batch, ChildLink, Store};

use super::{instance_id, instant, started};

fn link(child: u32, item: Option<u32>, attempt: u32) -> ChildLink {
    ChildLink {
        child_id: instance_id(child),
        parent_id: instance_id(1),
        step: StepId::from("partners"),
        item,
        attempt,
        created_at: instant(10),
    }
}

pub(super) async fn children_are_listed_under_their_parent(store: Arc<dyn Store>) {
    let batch = Batch {
        instances: vec![
            started(1, "parent", InstanceStatus::Running),
            started(2, "child", InstanceStatus::Completed),
            started(3, "child", InstanceStatus::Running),
            started(4, "child", InstanceStatus::Failed),
        ],
        children: vec![
            link(3, Some(1), 1),
            link(2, Some(0), 2),
            link(4, Some(0), 1),
        ],
        ..Batch::default()
    };
    store.commit(&batch).await.unwrap();
    let again = Batch {
        children: vec![ChildLink {
            step: StepId::from("other"),
            ..link(3, Some(1), 1)
        }],
        ..Batch::default()
    };
    store.commit(&again).await.unwrap();
    let listed = store.children(&instance_id(1)).await.unwrap();
    let seen: Vec<_> = listed
        .iter()
        .map(|child| {
            (
                child.link.child_id.clone(),
                child.link.step.to_string(),
                child.link.item,
                child.link.attempt,
                child.status,
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            (
                instance_id(4),
                "partners".into(),
                Some(0),
                1,
                InstanceStatus::Failed
            ),
            (
                instance_id(2),
                "partners".into(),
                Some(0),
                2,
                InstanceStatus::Completed
            ),
            (
                instance_id(3),
                "partners".into(),
                Some(1),
                1,
                InstanceStatus::Running
            ),
        ]
    );
    assert_eq!(listed[0].link.created_at, instant(10));
    assert!(store.children(&instance_id(2)).await.unwrap().is_empty());
}
