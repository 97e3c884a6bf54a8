-- 0003_entities: one e-mail rule in the database, and "seen before" support for quarantined rows.
-- Idempotent (re-applying it changes nothing), so it is safe on a warehouse of any earlier release.

-- The e-mail rule of include/emails.py (EMAIL_PATTERN), applied after btrim + lower(). NOT VALID: rows loaded
-- under the looser rule of earlier releases (e.g. 'a@b.c.') stay readable and are reported by the quality
-- `email` check instead of blocking the upgrade; every new or changed row must pass.
ALTER TABLE customers DROP CONSTRAINT IF EXISTS customers_email_check;
ALTER TABLE customers ADD CONSTRAINT customers_email_check
    CHECK (email = lower(btrim(email)) AND email ~ '^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$') NOT VALID;

-- reject_key: md5(source, natural key as read — the raw record when it has none — and reason), computed by
-- the load; the same reject in another run has the same key.
ALTER TABLE rejected_records ADD COLUMN IF NOT EXISTS reject_key text;
UPDATE rejected_records r
SET reject_key = md5(r.source || chr(31)
        || coalesce(nullif(btrim(r.raw_record ->> CASE r.source WHEN 'products' THEN 'id' WHEN 'customers' THEN 'email'
                                                       WHEN 'orders' THEN 'order_reference' ELSE 'session_id' END), ''),
                    r.raw_record::text)
        || chr(31) || r.reason)
WHERE r.reject_key IS NULL;
CREATE INDEX IF NOT EXISTS rejected_records_reject_key_idx ON rejected_records (reject_key, rejected_id);

-- Per quarantined row: is it new in its run, or was the same reject (same source, key and reason) seen in an
-- earlier run? first_seen_run/first_seen_at: the earliest run that rejected it; times_seen: how many runs did.
CREATE OR REPLACE VIEW rejected_records_status AS
WITH seen AS (
    SELECT reject_key,
           (array_agg(etl_run_id ORDER BY rejected_id))[1] AS first_seen_run,
           min(rejected_at) AS first_seen_at,
           count(DISTINCT etl_run_id)::integer AS times_seen
    FROM rejected_records
    GROUP BY reject_key
)
SELECT r.rejected_id, r.etl_run_id, r.source, r.source_file, r.line_number, r.reason, r.field, r.detail,
       r.rejected_at, r.reject_key, s.first_seen_run, s.first_seen_at, s.times_seen,
       CASE WHEN s.first_seen_run = r.etl_run_id THEN 'new' ELSE 'seen_before' END AS status
FROM rejected_records r
JOIN seen s USING (reject_key);
COMMENT ON VIEW rejected_records_status IS
    'Each quarantined row with status new (first run that rejected it) or seen_before, first_seen_run and times_seen.';
