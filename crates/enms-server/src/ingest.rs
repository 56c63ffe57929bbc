//! The ingest path every reading takes — HTTP batches, CSV imports and the
//! demo factory alike — so they are validated and stored the same way.

use std::sync::Arc;

use enms_core::Reading;
use enms_store::{Store, StoreError};

use crate::error::ApiError;

#[derive(Clone)]
pub struct Ingest {
    store: Arc<dyn Store>,
}

impl Ingest {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    /// Stores validated readings atomically; returns once they are durable.
    pub async fn store(&self, readings: &[Reading]) -> Result<usize, ApiError> {
        match self.store.insert_readings(readings).await {
            Ok(()) => Ok(readings.len()),
            Err(StoreError::UnknownMachine(id)) => {
                let row = readings.iter().position(|r| r.machine_id == id).unwrap_or(0);
                let mut err = ApiError::invalid(
                    "unknown_machine",
                    &format!("readings[{row}].machine_id"),
                    format!("row {row}: unknown machine {id}"),
                );
                err.body.row = Some(row);
                Err(err)
            }
            Err(e) => Err(e.into()),
        }
    }
}
