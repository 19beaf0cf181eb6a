//! ListPartitionReassignments (key 46): reassignments in progress, from the
//! metadata image. A null topic list means every partition; named topics or
//! partitions that do not exist, or are not being reassigned, are left out, as
//! Kafka's controller does. `replicas` is the whole set during the move (the
//! target, then the replicas that leave).

use std::sync::Arc;

use kafka_protocol::messages::list_partition_reassignments_response::{OngoingPartitionReassignment, OngoingTopicReassignment};
use kafka_protocol::messages::{BrokerId, ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, TopicName};
use strom_metadata::{MetadataImage, PartitionImage, TopicImage};

use super::s;
use crate::dispatch::{Outcome, Reply};
use crate::server::Broker;

pub fn handle(b: &Arc<Broker>, reply: &Reply, req: ListPartitionReassignmentsRequest) -> Outcome {
    let image = b.metadata.image();
    reply.ready(&list(&image, &req))
}

pub fn list(image: &MetadataImage, req: &ListPartitionReassignmentsRequest) -> ListPartitionReassignmentsResponse {
    let mut resp = ListPartitionReassignmentsResponse::default();
    resp.error_message = None; // null, as Kafka sends it
    match &req.topics {
        None => {
            for t in image.topics.values() {
                push(&mut resp, t, t.partitions.values());
            }
        }
        Some(topics) => {
            for rt in topics {
                if let Some(t) = image.topic(rt.name.as_str()) {
                    push(&mut resp, t, rt.partition_indexes.iter().filter_map(|p| t.partitions.get(p)));
                }
            }
        }
    }
    resp
}

fn push<'a>(resp: &mut ListPartitionReassignmentsResponse, t: &TopicImage, parts: impl Iterator<Item = &'a PartitionImage>) {
    let ids = |v: &[i32]| v.iter().map(|&r| BrokerId(r)).collect::<Vec<_>>();
    let mut ot = OngoingTopicReassignment::default();
    ot.name = TopicName(s(t.name.clone()));
    for p in parts.filter(|p| p.is_reassigning()) {
        let mut op = OngoingPartitionReassignment::default();
        op.partition_index = p.partition;
        op.replicas = ids(&p.replicas);
        op.adding_replicas = ids(&p.adding_replicas);
        op.removing_replicas = ids(&p.removing_replicas);
        ot.partitions.push(op);
    }
    if !ot.partitions.is_empty() {
        resp.topics.push(ot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsTopics;
    use uuid::Uuid;

    fn image() -> MetadataImage {
        let mut img = MetadataImage::default();
        for (name, moving) in [("a", vec![1]), ("b", vec![]), ("c", vec![0, 2])] {
            let mut t = TopicImage { name: name.into(), id: Uuid::new_v4(), partitions: Default::default(), configs: Default::default() };
            for p in 0..3 {
                let m = moving.contains(&p);
                t.partitions.insert(
                    p,
                    PartitionImage {
                        partition: p,
                        replicas: if m { vec![4, 1, 2] } else { vec![1, 2] },
                        leader: 1,
                        leader_epoch: 0,
                        isr: vec![1, 2],
                        partition_epoch: 0,
                        adding_replicas: if m { vec![4] } else { vec![] },
                        removing_replicas: if m { vec![2] } else { vec![] },
                    },
                );
            }
            img.topic_names.insert(t.id, name.into());
            img.topics.insert(name.into(), Arc::new(t));
        }
        img
    }

    fn shape(r: &ListPartitionReassignmentsResponse) -> Vec<(String, Vec<i32>)> {
        r.topics.iter().map(|t| (t.name.to_string(), t.partitions.iter().map(|p| p.partition_index).collect())).collect()
    }

    #[test]
    fn lists_only_partitions_being_reassigned() {
        let img = image();
        let all = list(&img, &ListPartitionReassignmentsRequest::default());
        assert_eq!(shape(&all), vec![("a".into(), vec![1]), ("c".into(), vec![0, 2])]);
        let p = &all.topics[0].partitions[0];
        assert_eq!((p.replicas.len(), p.adding_replicas.clone(), p.removing_replicas.clone()), (3, vec![BrokerId(4)], vec![BrokerId(2)]));
        let mut req = ListPartitionReassignmentsRequest::default();
        let named = |n: &str, ps: Vec<i32>| {
            let mut t = ListPartitionReassignmentsTopics::default();
            t.name = TopicName(s(n));
            t.partition_indexes = ps;
            t
        };
        req.topics = Some(vec![named("c", vec![2, 1, 9]), named("missing", vec![0]), named("b", vec![0])]);
        assert_eq!(shape(&list(&img, &req)), vec![("c".into(), vec![2])]);
    }
}
