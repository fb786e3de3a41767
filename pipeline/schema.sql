-- Patuh database contract (DESIGN section 5). Every table and view lives here, in one place.
-- Applied idempotently by pipeline.db.connect(); a new column is added with ALTER TABLE below the
-- CREATE, never by editing a CREATE that older files already have.

-- ------------------------------------------------------------------------------------------- inputs
CREATE SEQUENCE IF NOT EXISTS batch_seq START 1;

CREATE TABLE IF NOT EXISTS batches (
    batch_id          BIGINT PRIMARY KEY,
    source_file       VARCHAR NOT NULL,      -- file name only, never a user's home path
    sha256            VARCHAR NOT NULL UNIQUE,
    institution_id    VARCHAR NOT NULL,
    sop_id            VARCHAR,
    format            VARCHAR NOT NULL,      -- csv | xlsx | xes | parquet
    loaded_at         TIMESTAMPTZ NOT NULL,
    rows_in           BIGINT NOT NULL,
    rows_loaded       BIGINT NOT NULL,
    rows_quarantined  BIGINT NOT NULL,
    rows_duplicate    BIGINT NOT NULL DEFAULT 0,   -- exact duplicates folded into one loaded row
    rows_unknown_activity BIGINT NOT NULL DEFAULT 0,
    mapping           JSON
);

CREATE TABLE IF NOT EXISTS events (
    institution_id VARCHAR NOT NULL,
    sop_id         VARCHAR,                  -- '' for a log that belongs to no catalogue SOP (as in cases)
    case_id        VARCHAR NOT NULL,         -- pseudonym (HMAC-SHA256), never the raw id
    activity       VARCHAR NOT NULL,         -- the label as exported
    step_id        VARCHAR,                  -- NULL when the activity is not a step of the SOP
    role           VARCHAR,                  -- the SOP role key when mapped, else the exported role
    resource       VARCHAR,                  -- pseudonym
    documents      VARCHAR[],                -- NULL: the log does not record documents
    ts_start       TIMESTAMPTZ,              -- NULL for logs with one timestamp per event
    ts_end         TIMESTAMPTZ NOT NULL,     -- completion (the only timestamp of a one-timestamp log)
    batch_id       BIGINT NOT NULL,
    source_row     BIGINT NOT NULL           -- 1-based data row (XES: event number) in the source
);

CREATE TABLE IF NOT EXISTS cases (
    institution_id VARCHAR NOT NULL,
    sop_id         VARCHAR,                  -- '' for no SOP (as in events: joins compare it with =)
    case_id        VARCHAR NOT NULL,
    opened_at      TIMESTAMPTZ NOT NULL,
    closed_at      TIMESTAMPTZ,              -- NULL while open
    status         VARCHAR NOT NULL,         -- open | closed
    n_events       BIGINT NOT NULL
    -- one row per (institution_id, sop_id, case_id): ingest.py deletes a batch's cases and writes each once.
    -- No PRIMARY KEY: its index cost a 1M-event load 0.15-0.3 s (and every publish), and DuckDB's joins and
    -- aggregates never use it. Databases created with it keep it.
);

-- columns added after the first files were written (NULL in older rows: the run then reads the events)
ALTER TABLE cases ADD COLUMN IF NOT EXISTS last_at TIMESTAMPTZ;    -- the end of the case's last event
ALTER TABLE cases ADD COLUMN IF NOT EXISTS last_step_id VARCHAR;   -- the step of its last event mapped to one

CREATE TABLE IF NOT EXISTS quarantine (
    batch_id   BIGINT NOT NULL,
    source_row BIGINT NOT NULL,
    reason     VARCHAR NOT NULL,             -- missing_case_id | missing_activity | missing_timestamp |
                                             -- bad_timestamp | end_before_start | out_of_range | ...
    message    VARCHAR NOT NULL,             -- file, row, column, what was expected, how to fix it
    raw        JSON                          -- the row as read (name and note columns removed)
);
-- the message in Indonesian (file, row, column, value, what was expected, how to fix it), which
-- `patuh quarantine` shows first ("Bahasa Indonesia first, English second"); NULL in rows quarantined before
-- it was added (their English message stands in)
ALTER TABLE quarantine ADD COLUMN IF NOT EXISTS pesan VARCHAR;

-- ingest (issue 5): the case status an export records (open | closed, NULL when it records none), so a
-- later batch can recompute its cases from all their events; lifecycle rows (XES start, schedule, ...)
-- folded into their complete event or skipped: rows_in = loaded + quarantined + duplicate + lifecycle.
ALTER TABLE events ADD COLUMN IF NOT EXISTS status VARCHAR;
ALTER TABLE batches ADD COLUMN IF NOT EXISTS rows_lifecycle BIGINT DEFAULT 0;

-- Batches taken out again (patuh unload, patuh ingest --replace): what was removed and when. A removal makes
-- the next compliance run full (an incremental run only sees what was added).
CREATE TABLE IF NOT EXISTS batch_removals (
    batch_id       BIGINT NOT NULL,
    source_file    VARCHAR NOT NULL,
    sha256         VARCHAR NOT NULL,
    institution_id VARCHAR NOT NULL,
    sop_id         VARCHAR,
    loaded_at      TIMESTAMPTZ NOT NULL,
    rows_loaded    BIGINT NOT NULL,
    removed_at     TIMESTAMPTZ NOT NULL
);

-- The fingerprint of the key the identifiers were pseudonymised with: HMAC-SHA256(key, 'patuh-key-check') in hex,
-- which reveals nothing of the key or of any identifier (ingest.check_key). The first load (or rule input)
-- writes it; a later one with another key (another Unix user's key file, a cron job's PATUH_SECRET, a lost key
-- file) is refused instead of giving the same students new pseudonyms. One row. Not published.
CREATE TABLE IF NOT EXISTS key_check (
    fingerprint VARCHAR NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL
);

-- Daily attendance, the input of the SMK N 1 Petasia attendance rules (rules.py).
CREATE TABLE IF NOT EXISTS attendance (
    institution_id VARCHAR NOT NULL,
    student_id     VARCHAR NOT NULL,         -- pseudonym
    day            DATE NOT NULL,
    status         VARCHAR NOT NULL,         -- hadir | sakit | izin | alpa
    semester       VARCHAR NOT NULL,         -- e.g. 2026-1
    batch_id       BIGINT NOT NULL,
    source_row     BIGINT NOT NULL
);

-- The levels that handled a student's "layanan khusus" case, input of the escalation-order rule (rules.py).
CREATE TABLE IF NOT EXISTS escalations (
    institution_id VARCHAR NOT NULL,
    case_id        VARCHAR NOT NULL,         -- pseudonym of the service case
    student_id     VARCHAR NOT NULL,         -- pseudonym
    topic          VARCHAR,                  -- kehadiran | kepribadian | akhlak | keamanan | ...
    role           VARCHAR NOT NULL,         -- guru_mapel | wali_kelas | guru_bk
    ts             TIMESTAMPTZ NOT NULL,     -- when that level took the case
    batch_id       BIGINT NOT NULL,
    source_row     BIGINT NOT NULL
);

-- Assessment scores and remedials, input of the remedial rule (rules.py).
CREATE TABLE IF NOT EXISTS scores (
    institution_id  VARCHAR NOT NULL,
    student_id      VARCHAR NOT NULL,        -- pseudonym
    subject         VARCHAR NOT NULL,
    assessment      VARCHAR NOT NULL,        -- ulangan_harian | uts | uas | tugas
    kd              VARCHAR,                 -- Kompetensi Dasar of an ulangan harian
    score           DOUBLE NOT NULL,
    kkm             DOUBLE NOT NULL,
    assessed_on     DATE NOT NULL,
    remedial_on     DATE,                    -- NULL: no remedial
    absence_excused BOOLEAN,                 -- low because of tolerated absence: pembelajaran susulan instead
    final_exam_on   DATE,                    -- the school's final exam (the remedial deadline counts back from it)
    batch_id        BIGINT NOT NULL,
    source_row      BIGINT NOT NULL
);

-- ------------------------------------------------------------------------------------------ results
CREATE TABLE IF NOT EXISTS runs (
    run_id          VARCHAR PRIMARY KEY,     -- e.g. 20261123T101500Z-3f2a
    started_at      TIMESTAMPTZ NOT NULL,
    finished_at     TIMESTAMPTZ,
    status          VARCHAR NOT NULL,        -- running | ok | failed
    catalogue_hash  VARCHAR NOT NULL,        -- SOP models, calendars, engine version (a change: full run)
    params          JSON,
    patuh_version   VARCHAR NOT NULL,
    summary         JSON
);

CREATE TABLE IF NOT EXISTS case_results (
    run_id             VARCHAR NOT NULL,
    institution_id     VARCHAR NOT NULL,
    sop_id             VARCHAR NOT NULL,
    case_id            VARCHAR NOT NULL,
    opened_at          TIMESTAMPTZ,
    closed_at          TIMESTAMPTZ,
    fitness            DOUBLE,
    alignment_cost     BIGINT,
    compliant          BOOLEAN NOT NULL,
    n_deviations       BIGINT NOT NULL,
    lead_time_working  DOUBLE,               -- working minutes, first to last event
    lead_time_elapsed  DOUBLE,               -- elapsed minutes
    status             VARCHAR NOT NULL,      -- open | closed
    variant_hash       VARCHAR
);

CREATE TABLE IF NOT EXISTS deviations (
    run_id         VARCHAR NOT NULL,
    institution_id VARCHAR NOT NULL,
    sop_id         VARCHAR NOT NULL,
    case_id        VARCHAR NOT NULL,
    kind           VARCHAR NOT NULL,         -- DESIGN section 6
    step_id        VARCHAR,
    activity       VARCHAR,
    expected       VARCHAR,
    observed       VARCHAR,
    severity       VARCHAR NOT NULL,         -- low | medium | high
    occurred_at    TIMESTAMPTZ,              -- DESIGN says `at`: a reserved word in DuckDB 2
    detail         JSON
);
-- the case's opening and closing (as in case_results): a period's deviations are those of its cases (run.py)
ALTER TABLE deviations ADD COLUMN IF NOT EXISTS case_opened_at TIMESTAMPTZ;
ALTER TABLE deviations ADD COLUMN IF NOT EXISTS case_closed_at TIMESTAMPTZ;

CREATE TABLE IF NOT EXISTS step_metrics (
    run_id               VARCHAR NOT NULL,
    institution_id       VARCHAR NOT NULL,
    sop_id               VARCHAR NOT NULL,
    step_id              VARCHAR NOT NULL,
    period               VARCHAR NOT NULL,   -- YYYY-MM
    n                    BIGINT NOT NULL,
    wait_p50             DOUBLE,             -- working minutes
    wait_p90             DOUBLE,
    proc_p50             DOUBLE,
    proc_p90             DOUBLE,
    standard             VARCHAR,            -- the raw time text of the step
    share_over_standard  DOUBLE
);
-- how many waiting and processing times the percentiles come from (a first step has no waiting)
ALTER TABLE step_metrics ADD COLUMN IF NOT EXISTS n_wait BIGINT;
ALTER TABLE step_metrics ADD COLUMN IF NOT EXISTS n_proc BIGINT;

-- Distinct paths (variants of step ids) per SOP, for the process map's "actual paths".
CREATE TABLE IF NOT EXISTS variants (
    run_id         VARCHAR NOT NULL,
    institution_id VARCHAR NOT NULL,
    sop_id         VARCHAR NOT NULL,
    variant_hash   VARCHAR NOT NULL,
    steps          VARCHAR[] NOT NULL,       -- step ids; '?<activity>' for an activity that is no step
    n_cases        BIGINT NOT NULL,
    fitness        DOUBLE NOT NULL
);

-- Per event timing of the last run: the bottleneck and dashboard aggregates start here.
CREATE TABLE IF NOT EXISTS event_timing (
    run_id          VARCHAR NOT NULL,
    institution_id  VARCHAR NOT NULL,
    sop_id          VARCHAR NOT NULL,
    case_id         VARCHAR NOT NULL,
    step_id         VARCHAR NOT NULL,
    role            VARCHAR,
    prev_role       VARCHAR,
    ts_start        TIMESTAMPTZ,
    ts_end          TIMESTAMPTZ NOT NULL,
    wait_working    DOUBLE,                  -- previous event's end to this start (working minutes)
    proc_working    DOUBLE,                  -- start to end (working minutes)
    duration_std    DOUBLE,                  -- duration in the unit of the standard
    standard_max    DOUBLE,
    standard_measure VARCHAR,
    over_standard   BOOLEAN,
    resource        VARCHAR,                 -- pseudonym
    local_start     TIMESTAMP,               -- in the institution's time zone (months, weeks, hours of day)
    local_end       TIMESTAMP,
    local_prev_end  TIMESTAMP,
    step_visit      INTEGER,                 -- 1 for the case's first execution of the step, 2 for the next...
    step_visits     INTEGER                  -- executions of the step in the case (distinct cases = sums)
);

-- columns added after the first files were written (a no-op on a new database)
ALTER TABLE event_timing ADD COLUMN IF NOT EXISTS resource VARCHAR;
ALTER TABLE event_timing ADD COLUMN IF NOT EXISTS local_start TIMESTAMP;
ALTER TABLE event_timing ADD COLUMN IF NOT EXISTS local_end TIMESTAMP;
ALTER TABLE event_timing ADD COLUMN IF NOT EXISTS local_prev_end TIMESTAMP;
ALTER TABLE event_timing ADD COLUMN IF NOT EXISTS step_visit INTEGER;
ALTER TABLE event_timing ADD COLUMN IF NOT EXISTS step_visits INTEGER;

CREATE TABLE IF NOT EXISTS alignment_cache (
    model_hash   VARCHAR NOT NULL,
    variant_hash VARCHAR NOT NULL,
    cost         BIGINT NOT NULL,
    fitness      DOUBLE NOT NULL,
    moves        JSON NOT NULL,
    PRIMARY KEY (model_hash, variant_hash)
);

-- Texts outside the SOPs (an activity with no step, a role text that names no role) that at least 5 cases of
-- an institution use, so that results may name them (pipeline/public_texts.py); a rarer one may be a note about
-- a person and is replaced. A cache that only grows between full runs (counts only grow as events arrive); a
-- full run clears its institutions' rows. Not published.
CREATE TABLE IF NOT EXISTS public_texts (
    institution_id VARCHAR NOT NULL,
    kind           VARCHAR NOT NULL,          -- activity | role
    text           VARCHAR NOT NULL
);

-- The case keys the last two incremental runs changed (run.py). Publishing replays both runs' changes onto
-- the published file of the run before the previous one instead of copying the current file whole
-- (publish.py). Not a result table: no run_id column, not published.
CREATE TABLE IF NOT EXISTS run_changes (
    changed_in     VARCHAR NOT NULL,          -- the incremental run
    change         VARCHAR NOT NULL,          -- dirty | dirty_known | rejudged (publish.RECORDED)
    institution_id VARCHAR,
    sop_id         VARCHAR,
    case_id        VARCHAR
);

-- The last successful run's results. Per-case tables (case_results, deviations, event_timing) hold one
-- current row set per case: each row carries the run that wrote it (an incremental run rewrites the rows of
-- changed cases, the stall deviations of open ones, and an open case's result when its stall status
-- changed), so their latest_* views are the whole tables. Aggregate tables
-- keep only the last run's rows.
CREATE OR REPLACE VIEW latest_run AS
    SELECT * FROM runs WHERE status = 'ok' ORDER BY finished_at DESC LIMIT 1;
CREATE OR REPLACE VIEW latest_case_results AS SELECT * FROM case_results;
CREATE OR REPLACE VIEW latest_deviations AS SELECT * FROM deviations;
CREATE OR REPLACE VIEW latest_step_metrics AS
    SELECT m.* FROM step_metrics m JOIN latest_run USING (run_id);
CREATE OR REPLACE VIEW latest_event_timing AS SELECT * FROM event_timing;

-- ---------------------------------------------------------------------------------------- catalogue
-- A snapshot of the SOP catalogue and institutions, refreshed by every run (run.py) and published with
-- the results, so the dashboard and reports never read YAML files.
CREATE TABLE IF NOT EXISTS institutions (
    institution_id VARCHAR PRIMARY KEY,
    name           VARCHAR NOT NULL,
    kind           VARCHAR NOT NULL,
    region         VARCHAR,
    timezone       VARCHAR NOT NULL
);

CREATE TABLE IF NOT EXISTS sops (
    sop_id          VARCHAR PRIMARY KEY,
    institution_id  VARCHAR NOT NULL,
    number          VARCHAR,
    title           VARCHAR NOT NULL,
    kind            VARCHAR NOT NULL,        -- procedure | rules
    n_steps         INTEGER NOT NULL,
    case_time       VARCHAR,
    model_hash      VARCHAR NOT NULL,
    model           JSON NOT NULL            -- the whole validated model (header, steps, flow, rules)
);

CREATE TABLE IF NOT EXISTS sop_steps (
    sop_id           VARCHAR NOT NULL,
    step_id          VARCHAR NOT NULL,
    ord              INTEGER NOT NULL,       -- 0-based position in the table
    no               VARCHAR,
    activity         VARCHAR NOT NULL,
    role             VARCHAR,
    role_label       VARCHAR,
    documents        VARCHAR[],
    time_raw         VARCHAR,
    standard_measure VARCHAR,                -- working_minutes | working_days | elapsed_minutes
    standard_min     DOUBLE,
    standard_max     DOUBLE,
    optional         BOOLEAN NOT NULL,
    repeat           BOOLEAN NOT NULL
);

CREATE TABLE IF NOT EXISTS sop_edges (
    sop_id VARCHAR NOT NULL,
    src    VARCHAR NOT NULL,                 -- step id or 'start'
    dst    VARCHAR NOT NULL                  -- step id or 'end'
);

-- bottlenecks (pipeline/bottlenecks.py)
-- Written by run.py after event_timing, case_results and deviations. Times are working minutes.
CREATE TABLE IF NOT EXISTS bottleneck_calendars (
    run_id            VARCHAR NOT NULL,
    institution_id    VARCHAR NOT NULL,
    workday_minutes   DOUBLE NOT NULL,        -- a typical full working day (median over working weekdays)
    workdays_per_week DOUBLE NOT NULL
);

CREATE TABLE IF NOT EXISTS bottleneck_step_month (
    run_id               VARCHAR NOT NULL,
    institution_id       VARCHAR NOT NULL,
    sop_id               VARCHAR NOT NULL,
    step_id              VARCHAR NOT NULL,
    period               VARCHAR NOT NULL,    -- YYYY-MM of the event's end, institution's local time
    n                    BIGINT NOT NULL,     -- executions of the step
    n_cases              BIGINT NOT NULL,
    wait_p50             DOUBLE,
    wait_p90             DOUBLE,
    proc_p50             DOUBLE,
    proc_p90             DOUBLE,
    wait_share           DOUBLE,              -- waiting / (waiting + processing)
    n_with_standard      BIGINT NOT NULL,
    n_over               BIGINT NOT NULL,
    share_over_standard  DOUBLE,              -- n_over / n_with_standard
    excess_working       DOUBLE               -- working minutes over the standard, summed
);
ALTER TABLE bottleneck_step_month ADD COLUMN IF NOT EXISTS n_wait BIGINT;   -- values behind wait_p50/p90
ALTER TABLE bottleneck_step_month ADD COLUMN IF NOT EXISTS n_proc BIGINT;   -- values behind proc_p50/p90

CREATE TABLE IF NOT EXISTS bottleneck_handovers (
    run_id         VARCHAR NOT NULL,
    institution_id VARCHAR NOT NULL,
    sop_id         VARCHAR NOT NULL,
    prev_role      VARCHAR NOT NULL,
    role           VARCHAR NOT NULL,
    n              BIGINT NOT NULL,
    wait_p50       DOUBLE,
    wait_p90       DOUBLE,
    wait_total     DOUBLE
);

CREATE TABLE IF NOT EXISTS bottleneck_wip (
    run_id         VARCHAR NOT NULL,
    institution_id VARCHAR NOT NULL,
    sop_id         VARCHAR NOT NULL,
    step_id        VARCHAR NOT NULL,
    week           DATE NOT NULL,             -- Monday of the week, local time
    cases_waiting  BIGINT NOT NULL,           -- cases waiting for the step at some time in the week
    cases_at_step  BIGINT NOT NULL            -- waiting for it or being processed by it
);

CREATE TABLE IF NOT EXISTS bottleneck_rework (
    run_id               VARCHAR NOT NULL,
    institution_id       VARCHAR NOT NULL,
    sop_id               VARCHAR NOT NULL,
    step_id              VARCHAR NOT NULL,
    n_cases              BIGINT NOT NULL,     -- cases with the step
    n_cases_repeated     BIGINT NOT NULL,     -- cases with the step more than once
    share_cases_repeated DOUBLE NOT NULL,
    extra_executions     BIGINT NOT NULL,     -- executions beyond the first, summed over cases
    repeat_allowed       BOOLEAN              -- the SOP has a loop here (repeat: true)
);

CREATE TABLE IF NOT EXISTS bottleneck_role_load (
    run_id         VARCHAR NOT NULL,
    institution_id VARCHAR NOT NULL,
    period         VARCHAR NOT NULL,          -- YYYY-MM, local time
    role           VARCHAR NOT NULL,
    n_events       BIGINT NOT NULL,
    n_cases        BIGINT NOT NULL,
    proc_minutes   DOUBLE,                    -- working minutes spent processing
    wait_minutes   DOUBLE,                    -- working minutes cases waited for this role
    n_resources    BIGINT                     -- distinct (pseudonymised) resources; NULL when not logged
);

-- The events of each role, month and resource and their summed working times: bottleneck_role_load is their
-- sum (distinct resources = rows), so an incremental run updates both from its changed cases alone.
CREATE TABLE IF NOT EXISTS bottleneck_role_resources (
    run_id         VARCHAR NOT NULL,
    institution_id VARCHAR NOT NULL,
    period         VARCHAR NOT NULL,          -- YYYY-MM, local time
    role           VARCHAR NOT NULL,
    resource       VARCHAR,                   -- pseudonym; NULL: the role's events without a resource
    n_events       BIGINT NOT NULL,
    proc_minutes   DOUBLE,                    -- NULL when no event has a processing time
    n_proc         BIGINT NOT NULL,           -- events with a processing time
    wait_minutes   DOUBLE,
    n_wait         BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS bottlenecks (
    run_id           VARCHAR NOT NULL,
    institution_id   VARCHAR NOT NULL,
    sop_id           VARCHAR NOT NULL,
    rank             INTEGER NOT NULL,        -- 1 = worst, per institution x SOP
    step_id          VARCHAR NOT NULL,
    step_no          VARCHAR,
    activity         VARCHAR,
    role             VARCHAR,
    n                BIGINT NOT NULL,
    n_cases          BIGINT NOT NULL,
    wait_p50         DOUBLE,
    wait_p90         DOUBLE,
    proc_p50         DOUBLE,
    proc_p90         DOUBLE,
    standard         VARCHAR,
    share_cases_over DOUBLE,
    wait_total       DOUBLE,
    excess_total     DOUBLE,
    score            DOUBLE NOT NULL,         -- wait_total + excess_total (working minutes)
    explanation_id   VARCHAR NOT NULL,
    explanation_en   VARCHAR NOT NULL
);
ALTER TABLE bottlenecks ADD COLUMN IF NOT EXISTS n_wait BIGINT;   -- values behind wait_p50/p90
ALTER TABLE bottlenecks ADD COLUMN IF NOT EXISTS n_proc BIGINT;

-- Kept sums of the bottleneck aggregates over every current event_timing row (pipeline/bottlenecks.py,
-- STATE_TABLES): an incremental run appends its changed cases' new rows and their old ones subtracted, so the
-- percentiles and per-step sums cost what changed, not the whole log; readers add a group's rows up (the
-- percentiles take them as they are).
-- The tables of values number their groups (all columns but value and n) in a *_groups table beside them:
-- their percentiles sort rows by one integer instead of the group's text keys.
-- Valid for the run in bottleneck_state_run only; any other run builds them again from event_timing.
-- Not published.
CREATE TABLE IF NOT EXISTS bottleneck_state_run (
    state_run      VARCHAR NOT NULL,
    compacted_rows BIGINT                     -- rows of the kept sums when last added up (see COMPACT_GROWTH)
);
ALTER TABLE bottleneck_state_run ADD COLUMN IF NOT EXISTS compacted_rows BIGINT;

CREATE TABLE IF NOT EXISTS bottleneck_state_values (
    institution_id VARCHAR NOT NULL,
    sop_id         VARCHAR NOT NULL,
    step_id        VARCHAR NOT NULL,
    month          DATE NOT NULL,             -- of the event's end, institution's local time
    measure        VARCHAR NOT NULL,          -- 'wait' or 'proc'
    value          DOUBLE NOT NULL,           -- working minutes
    n              BIGINT NOT NULL,           -- events with this value (appended changes: negative too)
    gid            INTEGER                    -- in bottleneck_state_values_groups
);
ALTER TABLE bottleneck_state_values ADD COLUMN IF NOT EXISTS gid INTEGER;

CREATE TABLE IF NOT EXISTS bottleneck_state_values_groups (
    gid            INTEGER NOT NULL,
    institution_id VARCHAR NOT NULL,
    sop_id         VARCHAR NOT NULL,
    step_id        VARCHAR NOT NULL,
    month          DATE NOT NULL,
    measure        VARCHAR NOT NULL
);

CREATE TABLE IF NOT EXISTS bottleneck_state_step_values (
    institution_id VARCHAR NOT NULL,
    sop_id         VARCHAR NOT NULL,
    step_id        VARCHAR NOT NULL,
    measure        VARCHAR NOT NULL,
    value          DOUBLE NOT NULL,
    n              BIGINT NOT NULL,
    gid            INTEGER                    -- in bottleneck_state_step_values_groups
);
ALTER TABLE bottleneck_state_step_values ADD COLUMN IF NOT EXISTS gid INTEGER;

CREATE TABLE IF NOT EXISTS bottleneck_state_step_values_groups (
    gid            INTEGER NOT NULL,
    institution_id VARCHAR NOT NULL,
    sop_id         VARCHAR NOT NULL,
    step_id        VARCHAR NOT NULL,
    measure        VARCHAR NOT NULL
);

CREATE TABLE IF NOT EXISTS bottleneck_state_step_month (
    institution_id VARCHAR NOT NULL,
    sop_id         VARCHAR NOT NULL,
    step_id        VARCHAR NOT NULL,
    month          DATE NOT NULL,
    n              BIGINT NOT NULL,
    n_cases        BIGINT NOT NULL,
    n_std          BIGINT NOT NULL,
    n_over         BIGINT NOT NULL,
    excess         DOUBLE NOT NULL
);

CREATE TABLE IF NOT EXISTS bottleneck_state_steps (
    institution_id VARCHAR NOT NULL,
    sop_id         VARCHAR NOT NULL,
    step_id        VARCHAR NOT NULL,
    n_cases        BIGINT NOT NULL,
    n_std_cases    BIGINT NOT NULL,
    n_over_cases   BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS bottleneck_state_roles (
    institution_id VARCHAR NOT NULL,
    sop_id         VARCHAR NOT NULL,
    step_id        VARCHAR NOT NULL,
    role           VARCHAR NOT NULL,
    n              BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS bottleneck_state_handovers (
    institution_id VARCHAR NOT NULL,
    sop_id         VARCHAR NOT NULL,
    prev_role      VARCHAR NOT NULL,
    role           VARCHAR NOT NULL,
    value          DOUBLE,                    -- NULL: a handover without a waiting time
    n              BIGINT NOT NULL,
    gid            INTEGER                    -- in bottleneck_state_handovers_groups
);
ALTER TABLE bottleneck_state_handovers ADD COLUMN IF NOT EXISTS gid INTEGER;

CREATE TABLE IF NOT EXISTS bottleneck_state_handovers_groups (
    gid            INTEGER NOT NULL,
    institution_id VARCHAR NOT NULL,
    sop_id         VARCHAR NOT NULL,
    prev_role      VARCHAR NOT NULL,
    role           VARCHAR NOT NULL
);
