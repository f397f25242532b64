-- Athena tables over the reconciliation datasets that `recon-daily` (and `payops recon run`)
-- write as Parquet under Hive-style day partitions in the data bucket. Replace
-- ${DataBucket} with the stack's DataBucketName output. Partition projection: no crawler and
-- no MSCK REPAIR; a new day is queryable as soon as its files are written.
--
-- Types match the files: amounts DECIMAL(18,4), the fraud score DECIMAL(7,6), dates DATE,
-- timestamps in UTC (TIMESTAMP), policy flags ARRAY<STRING>. User ids are keyed tokens.

CREATE DATABASE IF NOT EXISTS payops_recon;

-- The final aggregate index: one row per transaction (and per unknown statement transaction).
CREATE EXTERNAL TABLE IF NOT EXISTS payops_recon.final (
  transaction_id           STRING,
  merchant_id              STRING,
  masked_user_id           STRING,
  amount                   DECIMAL(18,4),
  currency                 STRING,
  status                   STRING,
  event_time               TIMESTAMP,
  fraud_score              DECIMAL(7,6),
  policy_flags             ARRAY<STRING>,
  compliance_assessment    STRING,
  side                     STRING,
  reconciled_status        STRING,
  amount_posted            DECIMAL(18,4),
  fee_charged              DECIMAL(18,4),
  discrepancy              DECIMAL(18,4),
  batch_run_date           DATE,
  reconciliation_timestamp TIMESTAMP
)
PARTITIONED BY (dt STRING)
STORED AS PARQUET
LOCATION 's3://${DataBucket}/recon/final/'
TBLPROPERTIES (
  'projection.enabled' = 'true',
  'projection.dt.type' = 'date',
  'projection.dt.format' = 'yyyy-MM-dd',
  'projection.dt.range' = '2026-01-01,NOW',
  'projection.dt.interval' = '1',
  'projection.dt.interval.unit' = 'DAYS',
  'storage.location.template' = 's3://${DataBucket}/recon/final/dt=${dt}/'
);

-- The batch index: the bank's view only.
CREATE EXTERNAL TABLE IF NOT EXISTS payops_recon.batch (
  transaction_id    STRING,
  side              STRING,
  reconciled_status STRING,
  amount_posted     DECIMAL(18,4),
  discrepancy       DECIMAL(18,4),
  batch_run_date    DATE
)
PARTITIONED BY (dt STRING)
STORED AS PARQUET
LOCATION 's3://${DataBucket}/recon/batch/'
TBLPROPERTIES (
  'projection.enabled' = 'true',
  'projection.dt.type' = 'date',
  'projection.dt.format' = 'yyyy-MM-dd',
  'projection.dt.range' = '2026-01-01,NOW',
  'projection.dt.interval' = '1',
  'projection.dt.interval.unit' = 'DAYS',
  'storage.location.template' = 's3://${DataBucket}/recon/batch/dt=${dt}/'
);

-- Merchant KPIs per day.
CREATE EXTERNAL TABLE IF NOT EXISTS payops_recon.merchant_kpis (
  merchant_id       STRING,
  merchant_name     STRING,
  risk_level        STRING,
  transactions      BIGINT,
  volume            DECIMAL(18,4),
  refunds           BIGINT,
  refund_amount     DECIMAL(18,4),
  declines          BIGINT,
  matched           BIGINT,
  matched_rate      DECIMAL(5,4),
  total_discrepancy DECIMAL(18,4),
  batch_run_date    DATE
)
PARTITIONED BY (dt STRING)
STORED AS PARQUET
LOCATION 's3://${DataBucket}/recon/kpis/'
TBLPROPERTIES (
  'projection.enabled' = 'true',
  'projection.dt.type' = 'date',
  'projection.dt.format' = 'yyyy-MM-dd',
  'projection.dt.range' = '2026-01-01,NOW',
  'projection.dt.interval' = '1',
  'projection.dt.interval.unit' = 'DAYS',
  'storage.location.template' = 's3://${DataBucket}/recon/kpis/dt=${dt}/'
);

-- Merchant KPIs per month (the monthly rollup; batch_run_date is the month's first day).
CREATE EXTERNAL TABLE IF NOT EXISTS payops_recon.merchant_kpis_monthly (
  merchant_id       STRING,
  merchant_name     STRING,
  risk_level        STRING,
  transactions      BIGINT,
  volume            DECIMAL(18,4),
  refunds           BIGINT,
  refund_amount     DECIMAL(18,4),
  declines          BIGINT,
  matched           BIGINT,
  matched_rate      DECIMAL(5,4),
  total_discrepancy DECIMAL(18,4),
  batch_run_date    DATE
)
PARTITIONED BY (month STRING)
STORED AS PARQUET
LOCATION 's3://${DataBucket}/recon/kpis_monthly/'
TBLPROPERTIES (
  'projection.enabled' = 'true',
  'projection.month.type' = 'date',
  'projection.month.format' = 'yyyy-MM',
  'projection.month.range' = '2026-01,NOW',
  'projection.month.interval' = '1',
  'projection.month.interval.unit' = 'MONTHS',
  'storage.location.template' = 's3://${DataBucket}/recon/kpis_monthly/month=${month}/'
);

-- The final aggregate index per month (the monthly rollup: a copy of every daily final file
-- of the month, replaced day by day when a day is re-run; batch_run_date tells the days apart).
CREATE EXTERNAL TABLE IF NOT EXISTS payops_recon.final_monthly (
  transaction_id           STRING,
  merchant_id              STRING,
  masked_user_id           STRING,
  amount                   DECIMAL(18,4),
  currency                 STRING,
  status                   STRING,
  event_time               TIMESTAMP,
  fraud_score              DECIMAL(7,6),
  policy_flags             ARRAY<STRING>,
  compliance_assessment    STRING,
  side                     STRING,
  reconciled_status        STRING,
  amount_posted            DECIMAL(18,4),
  fee_charged              DECIMAL(18,4),
  discrepancy              DECIMAL(18,4),
  batch_run_date           DATE,
  reconciliation_timestamp TIMESTAMP
)
PARTITIONED BY (month STRING)
STORED AS PARQUET
LOCATION 's3://${DataBucket}/recon/final_monthly/'
TBLPROPERTIES (
  'projection.enabled' = 'true',
  'projection.month.type' = 'date',
  'projection.month.format' = 'yyyy-MM',
  'projection.month.range' = '2026-01,NOW',
  'projection.month.interval' = '1',
  'projection.month.interval.unit' = 'MONTHS',
  'storage.location.template' = 's3://${DataBucket}/recon/final_monthly/month=${month}/'
);

-- Example: a month's discrepancy by day, from one partition of the rollup.
-- SELECT batch_run_date, count(*), sum(discrepancy)
-- FROM payops_recon.final_monthly WHERE month = '2026-11' GROUP BY 1 ORDER BY 1;

-- Example: a month of PARTIAL or UNMATCHED transactions that compliance escalated.
-- SELECT dt, transaction_id, merchant_id, discrepancy, fraud_score, policy_flags
-- FROM payops_recon.final
-- WHERE dt BETWEEN '2026-11-01' AND '2026-11-30'
--   AND reconciled_status <> 'MATCHED' AND compliance_assessment = 'ESCALATE';
