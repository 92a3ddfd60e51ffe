from django.conf import settings
from django.db import models
from django.db.models.functions import Lower
from django.db.models.lookups import LessThan
from django.utils import timezone

from webapp.datasets.models import Prompt, PromptDataset
from webapp.projects.models import Project


class PolicyModel(models.Model):
    """A policy a run can start from: a built-in offline model, a checkpoint of one of the
    project's runs, a local Hugging Face folder (registered by an operator) or a tiny model."""

    class Source(models.TextChoices):
        BUILTIN = "builtin", "Built-in (ships offline)"
        CHECKPOINT = "checkpoint", "Checkpoint of a run"
        PATH = "path", "Local folder"
        TINY = "tiny", "Tiny random model (tests, smoke runs)"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="policies")
    name = models.CharField(max_length=120)
    source = models.CharField(max_length=16, choices=Source.choices)
    reference = models.CharField(
        max_length=500, blank=True,
        help_text="Built-in name or folder path (a checkpoint's folder); empty for a tiny model.",
    )
    # A run that trained or evaluated it keeps it (Run.policy), and the run whose checkpoint it is
    # cannot be deleted while it exists (run_delete_check).
    checkpoint = models.ForeignKey(
        "Checkpoint", null=True, blank=True, on_delete=models.PROTECT, related_name="policies",
        help_text="The checkpoint it starts from, when its source is a checkpoint.",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint("project", Lower("name"), name="policy_unique_name_per_project_any_case"),
            models.CheckConstraint(
                condition=models.Q(source="checkpoint", checkpoint__isnull=False)
                | (~models.Q(source="checkpoint") & models.Q(checkpoint__isnull=True)),
                name="policy_checkpoint_iff_checkpoint_source",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def engine_spec(self) -> dict:
        """The `policy` section of an engine config for this model."""
        if self.source == self.Source.BUILTIN:
            return {"source": "builtin", "name": self.reference}
        if self.source == self.Source.PATH:
            return {"source": "path", "path": self.reference}
        if self.source == self.Source.CHECKPOINT:
            return {"source": "path", "path": self.checkpoint.path}
        return {"source": "tiny"}


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


# The status state machine. running → queued is how a run whose worker died is handed
# to the next worker, which resumes it from its last checkpoint.
RUN_TRANSITIONS: dict[str, frozenset[str]] = {
    RunStatus.QUEUED: frozenset({RunStatus.RUNNING, RunStatus.CANCELLED, RunStatus.FAILED}),
    RunStatus.RUNNING: frozenset(
        {RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.QUEUED}
    ),
    RunStatus.SUCCEEDED: frozenset(),
    RunStatus.FAILED: frozenset(),
    RunStatus.CANCELLED: frozenset(),
}
TERMINAL_STATUSES = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED})


class RunKind(models.TextChoices):
    POLICY = "policy", "Policy RL"
    REWARD_MODEL = "reward_model", "Reward-model training"
    EVALUATION = "evaluation", "Evaluation"
    DPO = "dpo", "DPO from preference pairs"
    SFT = "sft", "Supervised fine-tuning"
    EXTERNAL = "external", "External trainer (reported over the API)"


class Run(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="runs")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=16, choices=RunKind.choices)
    config = models.JSONField(default=dict, blank=True, help_text="Engine config, validated at launch.")
    # db_default: a row written by code that predates the column (an older migration's model) gets "" too
    description = models.TextField(blank=True, default="", db_default="",
                                   help_text="The researcher's notes on the run (Markdown).")
    dataset = models.ForeignKey(
        PromptDataset, null=True, blank=True, on_delete=models.PROTECT, related_name="runs"
    )
    policy = models.ForeignKey(
        PolicyModel, null=True, blank=True, on_delete=models.PROTECT, related_name="runs"
    )
    eval_dataset = models.ForeignKey(
        PromptDataset, null=True, blank=True, on_delete=models.PROTECT, related_name="evaluating_runs",
        help_text="Held-out prompts a policy run evaluates every eval.every_steps steps.",
    )
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED)
    progress = models.FloatField(default=0.0)
    current_step = models.PositiveIntegerField(default=0)
    total_steps = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    cancel_requested = models.BooleanField(default=False)
    worker = models.CharField(max_length=200, blank=True, help_text="Host name of the worker running it.")
    executor = models.CharField(
        max_length=64, blank=True, default="", db_default="",
        help_text="The process on that worker node executing its current attempt, as 'pid@start time': another "
                  "delivery of its task to the node (another process of its pool) leaves the run to it while it lives.")
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0, help_text="Times a worker has started or resumed it.")
    released_by = models.CharField(
        max_length=255, blank=True, default="", db_default="",
        help_text="Set (to 'node:pid') when the worker running it shuts down: it stops after the step in progress, "
                  "keeps a checkpoint and goes back to the queue for any other worker than that shutting-down one; "
                  "the next attempt does not count as a lost one.")
    # db_default too: rows written by code that predates the column (older migration states) get 0.
    lost_attempts = models.PositiveIntegerField(
        default=0, db_default=0, help_text="Attempts in a row whose worker was lost before the run got further (a checkpoint, "
                             "an evaluation step); at STEER_MAX_LOST_ATTEMPTS the run fails.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    creation_key = models.CharField(
        max_length=64, blank=True, default="", db_default="",
        help_text="The Idempotency-Key its creating request sent (API): the same key again, from the same user in "
                  "the same project, answers this run instead of creating another.")
    creation_digest = models.CharField(
        max_length=64, blank=True, default="", db_default="",
        help_text="SHA-256 of the creating request's body, to tell a retry from another request under the same key.")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["project", "status"])]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "created_by", "creation_key"], condition=~models.Q(creation_key=""),
                name="run_unique_creation_key_per_project_and_user",
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=[s.value for s in RunStatus]), name="run_status_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(kind__in=[k.value for k in RunKind]), name="run_kind_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(progress__gte=0.0) & models.Q(progress__lte=1.0),
                name="run_progress_in_unit_interval",
            ),
            models.CheckConstraint(
                condition=models.Q(eval_dataset__isnull=True) | models.Q(kind="policy"),
                name="run_eval_dataset_only_for_policy_runs",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    def can_transition(self, to: str) -> bool:
        return to in RUN_TRANSITIONS[self.status]

    @property
    def worker_lost(self) -> bool:
        """Running, but its worker has not been heard from for longer than the timeout."""
        if self.status != RunStatus.RUNNING or self.heartbeat_at is None:
            return False
        age = (timezone.now() - self.heartbeat_at).total_seconds()
        return age > settings.STEER_HEARTBEAT_TIMEOUT_S

    @property
    def steps_planned(self) -> int | None:
        """Steps the run will take: what its worker set, or, before one has, what its config asks
        (an evaluation's count, from its dataset, is set at launch); None when not known yet (a
        reward-model, DPO or SFT run's, until its worker has read the data it trains on)."""
        if self.kind == RunKind.EVALUATION:
            return self.total_steps or None
        train = self.config.get("train") if isinstance(self.config, dict) else None
        return self.total_steps or (train.get("total_steps") if isinstance(train, dict) else None)

    @property
    def step_unreported(self) -> bool:
        """An external run, past the queue, whose trainer has reported no step (``current_step`` is
        optional in its status reports): how far it got is unknown, so its pages show no bar filled
        to some fraction (a "succeeded" report without a step set the progress to 1), but that the
        step was not reported."""
        return self.kind == RunKind.EXTERNAL and self.status != RunStatus.QUEUED and not self.current_step

    @property
    def registers_policy(self) -> bool:
        """A DPO or SFT run: trains a policy offline and, on success, registers its last checkpoint."""
        return self.kind in (RunKind.DPO, RunKind.SFT)

    @property
    def checkpoint_dir(self):
        return settings.STEER_CHECKPOINT_DIR / f"run-{self.pk}"


MAX_CHUNK_SPAN = 4096  # a chunk covers fewer steps than this: reads of a step range stay a bounded index scan


class MetricChunk(models.Model):
    """Points of one metric series written together, stored as one row: the storage behind MetricPoint.

    A batch of 1,000 points over 10 keys is 10 rows, not 1,000: per-row costs (tuple header,
    index entries, WAL records) dominated ingest when each point was a row (bench/metric_ingest.md).
    Within a series (run, key), chunks cover disjoint step ranges [step_min, step_max]; on
    PostgreSQL an exclusion constraint enforces it, on SQLite a trigger (migration 0004), so a
    (run, key, step) holds at most one value. ``points`` is ``[[step, value], …]`` in ascending
    step order; every point of a chunk was recorded at ``recorded_at``.
    Written only by ``webapp.experiments.metrics.metric_points_upsert``.
    """

    # No index of its own (the unique (run, key, step_max) index leads with run) and no per-row
    # foreign-key check: integrity is kept per batch instead. ``metric_points_upsert`` locks the
    # run row, and a trigger on the run table deletes a deleted run's chunks (migrations 0003, 0004)
    # beside the ORM's cascade.
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False)
    key = models.CharField(max_length=200)
    step_min = models.BigIntegerField()
    step_max = models.BigIntegerField()
    points = models.JSONField(help_text="[[step, value], …], steps ascending.")
    recorded_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "key", "step_max"], name="metric_chunk_unique_end"),
            models.CheckConstraint(condition=models.Q(step_min__lte=models.F("step_max")), name="metric_chunk_range"),
            models.CheckConstraint(  # step_max - step_min, which cannot overflow as step_min + span could
                condition=LessThan(models.F("step_max") - models.F("step_min"), MAX_CHUNK_SPAN),
                name="metric_chunk_span"),
        ]

    def __str__(self) -> str:
        return f"{self.key}@{self.step_min}..{self.step_max}"


class MetricPoint(models.Model):
    """One value of one metric at one step: a read-only view over ``MetricChunk`` (migration 0004).

    (run, key, step) is unique (the chunks of a series never overlap), so writes through
    ``metric_points_upsert`` are idempotent. ``chunk_step_min``/``chunk_step_max`` are the
    bounds of the point's chunk: SQL that reads a step range filters on them too, so the
    database reads only the chunks that overlap the range.
    """

    pk = models.CompositePrimaryKey("run", "key", "step")
    run = models.ForeignKey(Run, on_delete=models.DO_NOTHING, related_name="metrics", db_constraint=False)
    key = models.CharField(max_length=200)
    step = models.BigIntegerField()
    value = models.FloatField()
    recorded_at = models.DateTimeField()
    chunk_step_min = models.BigIntegerField()
    chunk_step_max = models.BigIntegerField()

    class Meta:
        managed = False
        db_table = "experiments_metricpoint"

    def __str__(self) -> str:
        return f"{self.key}@{self.step}={self.value}"


class RunTag(models.Model):
    """A short label a researcher gives a run ("baseline", "sweep-lr", "paper"), to find it again."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="tags")
    name = models.CharField(max_length=40)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["run", "name"], name="run_tag_unique_per_run")]
        indexes = [models.Index(fields=["name"], name="run_tag_name")]

    def __str__(self) -> str:
        return self.name


class Trajectory(models.Model):
    """One sampled completion of one prompt at one step, with its rewards and advantage."""

    class FinishReason(models.TextChoices):
        STOP = "stop", "Stopped (EOS)"
        LENGTH = "length", "Hit max tokens"

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="trajectories")
    step = models.PositiveIntegerField()
    group_index = models.PositiveIntegerField(help_text="Which prompt group in the step's batch.")
    sample_index = models.PositiveIntegerField(help_text="Which completion within the group.")
    prompt = models.ForeignKey(Prompt, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    prompt_text = models.TextField()
    prompt_messages = models.JSONField(
        null=True, blank=True,
        help_text="A chat prompt an external trainer sent as messages [{role, content}, ...] (prompt_text shows "
                  "them as 'role: content'); a dataset prompt keeps its messages on the prompt.")
    completion = models.TextField()
    rewards = models.JSONField(default=dict, help_text="Per-reward-component values by name.")
    reward = models.FloatField()
    advantage = models.FloatField(null=True, blank=True)
    length = models.PositiveIntegerField(
        null=True, blank=True,
        help_text="Completion length in tokens; null when unknown (an external trainer did not report it).")
    finish_reason = models.CharField(max_length=8, choices=FinishReason.choices, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "step", "group_index", "sample_index"]
        constraints = [
            models.UniqueConstraint(
                fields=["run", "step", "group_index", "sample_index"], name="trajectory_unique_slot"
            ),
        ]
        indexes = [
            models.Index(fields=["run", "step", "reward"]),
            # A run's trajectories ranked by reward (the API's ?ordering=reward, ?reward_min=) read
            # one page of the index; without it, every page sorted the whole run.
            models.Index(fields=["run", "reward"], name="trajectory_run_reward"),
        ]
        verbose_name_plural = "trajectories"

    def __str__(self) -> str:
        return f"run {self.run_id} step {self.step} [{self.group_index}.{self.sample_index}]"


class HeldOutAnswer(models.Model):
    """A policy run's greedy answer to one of its held-out prompts at a step it evaluated them,
    with how many of that step's samples of the prompt were right (the pass@k samples)."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="held_out_answers")
    step = models.PositiveIntegerField()
    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="+")
    completion = models.TextField()
    correct = models.BooleanField(help_text="The greedy answer matches the prompt's reference.")
    samples_correct = models.PositiveIntegerField()
    samples = models.PositiveIntegerField()
    length = models.PositiveIntegerField(help_text="Answer length in tokens.")
    finish_reason = models.CharField(max_length=8, choices=Trajectory.FinishReason.choices, blank=True)

    class Meta:
        ordering = ["run", "step", "prompt"]
        constraints = [
            models.UniqueConstraint(fields=["run", "step", "prompt"], name="held_out_answer_unique_slot"),
            models.CheckConstraint(condition=models.Q(samples_correct__lte=models.F("samples")),
                                   name="held_out_answer_samples_correct_at_most_samples"),
        ]

    def __str__(self) -> str:
        return f"run {self.run_id} step {self.step} prompt {self.prompt_id}"


class Checkpoint(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="checkpoints")
    step = models.PositiveIntegerField()
    path = models.CharField(max_length=500)
    size_bytes = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "step"]
        constraints = [models.UniqueConstraint(fields=["run", "step"], name="checkpoint_unique_step")]

    def __str__(self) -> str:
        return f"run {self.run_id} step {self.step}"


class MetricRollup(models.Model):
    """A bucket of one metric series pre-aggregated for charts: its first, last, min and max points.

    Level L covers ``ROLLUP_WIDTHS[L - 1]`` consecutive steps per bucket (bucket = step // width).
    Derived from MetricPoint by ``webapp.experiments.metric_rollups`` whenever points are
    written, so a chart of a million-point series reads about a thousand rows, not a million.
    """

    # As MetricPoint.run: no separate index, integrity kept per batch (see there).
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False)
    key = models.CharField(max_length=200)
    level = models.PositiveSmallIntegerField()
    bucket = models.BigIntegerField()
    n = models.PositiveIntegerField(help_text="Points in the bucket.")
    first_step = models.BigIntegerField()
    first_value = models.FloatField()
    last_step = models.BigIntegerField()
    last_value = models.FloatField()
    min_step = models.BigIntegerField()
    min_value = models.FloatField()
    max_step = models.BigIntegerField()
    max_value = models.FloatField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "key", "level", "bucket"], name="metric_rollup_unique_bucket"),
        ]

    def __str__(self) -> str:
        return f"{self.key} L{self.level}#{self.bucket}"


class RunArtifact(models.Model):
    """A file attached to a run (an evaluation report, a plot, sample generations), as MLflow's
    ``log_artifact``. ``path`` is what the user named it (``eval/report.json``); the bytes lie in
    ``STEER_ARTIFACT_DIR/run-<run id>/<file_name>``, a name Steer chose, so no user text ever
    becomes a path on disk (see ``webapp.experiments.artifacts``)."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="artifacts")
    path = models.CharField(max_length=255, help_text="Relative POSIX path, unique within the run.")
    file_name = models.CharField(max_length=64, help_text="The stored file's name in the run's artifact folder.")
    size_bytes = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    content_type = models.CharField(max_length=100, blank=True, default="",
                                    help_text="Guessed from the path's extension; downloads are always attachments.")
    created_at = models.DateTimeField(auto_now=True, help_text="When this path was last uploaded.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["run", "path"]
        constraints = [models.UniqueConstraint(fields=["run", "path"], name="run_artifact_unique_path")]

    def __str__(self) -> str:
        return f"run {self.run_id}: {self.path}"
