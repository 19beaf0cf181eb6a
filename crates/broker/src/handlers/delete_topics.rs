//! DeleteTopics (key 20): by name (all versions) and by topic id (v6+).

use std::sync::Arc;

use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use strom_protocol::ErrorCode;
use uuid::Uuid;

use super::s;
use crate::dispatch::{Outcome, Reply};
use crate::server::Broker;

pub fn handle(b: &Arc<Broker>, reply: &Reply, req: DeleteTopicsRequest) -> Outcome {
    let (b, reply) = (b.clone(), reply.clone());
    Outcome::Later(Box::pin(async move {
        let mut resp = DeleteTopicsResponse::default();
        let wanted: Vec<(Option<String>, Uuid)> = if reply.version >= 6 {
            req.topics.iter().map(|t| (t.name.as_ref().map(|n| n.to_string()), t.topic_id)).collect()
        } else {
            req.topic_names.iter().map(|n| (Some(n.to_string()), Uuid::nil())).collect()
        };
        let enabled = b.config.bool("delete.topic.enable");
        for (name, id) in wanted {
            let image = b.metadata.image();
            let topic = match &name {
                Some(n) => image.topic(n).cloned(),
                None => image.topic_by_id(&id).cloned(),
            };
            let mut r = DeletableTopicResult::default();
            r.name = name.clone().or_else(|| topic.as_ref().map(|t| t.name.clone())).map(|n| TopicName(s(n)));
            r.topic_id = topic.as_ref().map(|t| t.id).unwrap_or(id);
            let result = match topic {
                _ if !enabled => Err((ErrorCode::TopicDeletionDisabled, "Topic deletion is disabled.".to_string())),
                None if name.is_some() => {
                    Err((ErrorCode::UnknownTopicOrPartition, "This server does not host this topic-partition.".to_string()))
                }
                None => Err((ErrorCode::UnknownTopicId, "This server does not host this topic ID.".to_string())),
                Some(t) if t.name.starts_with("__") => Err((ErrorCode::InvalidRequest, "Internal topics cannot be deleted.".to_string())),
                Some(t) => b.delete_topic(t.id).await.map_err(|e| (e.code, e.message)),
            };
            if let Err((code, msg)) = result {
                r.error_code = code.code();
                r.error_message = Some(s(msg));
            }
            resp.responses.push(r);
        }
        reply.encode(&resp)
    }))
}
