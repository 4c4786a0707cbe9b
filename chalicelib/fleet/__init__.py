"""The whole Organization: plan, apply, the reconciliation and the SQS work-item worker."""
