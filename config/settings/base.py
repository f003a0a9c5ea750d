"""Settings shared by every environment. Everything a deployment changes comes from the environment
(django-environ); `.env.example` lists each variable and a test keeps that list complete."""

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parents[2]
env = environ.Env()
if (BASE_DIR / ".env").is_file():
    environ.Env.read_env(BASE_DIR / ".env")  # real environment variables win over the file


def _set(name: str) -> str:
    """The variable's value, or "" when unset or empty: `.env.example` leaves optional ones empty."""
    return env.str(name, default="").strip()


def _set_int(name: str) -> int | None:
    value = _set(name)
    return int(value) if value else None


DATA_DIR = Path(_set("DATA_DIR") or BASE_DIR / "var")
if not DATA_DIR.is_absolute():
    DATA_DIR = BASE_DIR / DATA_DIR  # relative to the project, not to wherever a command runs
DATA_DIR = DATA_DIR.resolve()
UPLOAD_DIR = DATA_DIR / "uploads"
DATA_DIR.mkdir(parents=True, exist_ok=True)  # SQLite, Qdrant and the broker need it to exist

SECRET_KEY = env.str("SECRET_KEY")
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = [o for o in env.list("CSRF_TRUSTED_ORIGINS", default=[]) if o]
CSRF_FAILURE_VIEW = "config.middleware.csrf_failure"  # JSON under /api/
# Sent with every HTML page (config.middleware): scripts only from our static files (data goes
# through json_script), nothing from other origins. Inline style attributes stay allowed (the
# evaluation charts' colours); they cannot run code.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; style-src-attr 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self'; connect-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "ninja",  # the API docs page from its own static files (Swagger UI), not from a CDN
    "core",
    "accounts",
    "ingest",
    "assistant",
    "audit",
    "evaluation",
]

MIDDLEWARE = [
    # First: /healthz and /readyz answer a probe on 127.0.0.1 over HTTP before ALLOWED_HOSTS
    # (CommonMiddleware) or SECURE_SSL_REDIRECT (SecurityMiddleware) apply (config/health.py).
    "config.health.HealthMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "config.middleware.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "config.middleware.ApiErrorsMiddleware",  # outside CSRF: its refusal becomes JSON too
    "ingest.uploads.UploadLimitMiddleware",  # before anything reads the body (CSRF reads POST)
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "accounts.middleware.ApiTokenMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "accounts.context_processors.user_roles",
            ],
        },
    },
]

DATABASES = {
    "default": env.db_url_config(_set("DATABASE_URL") or f"sqlite:///{DATA_DIR / 'db.sqlite3'}")
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The embedded default writes from web threads and the worker thread at once: WAL lets readers
    # go on during a write, IMMEDIATE transactions plus a timeout make writers queue, not fail.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # The web tier serves over ASGI, where every request runs on a thread of its own: a connection
    # kept for CONN_MAX_AGE stays with a thread that is never reused, so Django's docs say to turn
    # persistent connections off under ASGI and pool instead. psycopg's pool (one per process)
    # takes each request's connection back when the request ends and bounds how many a process
    # opens: web processes x DB_POOL_MAX + workers must stay under Postgres' max_connections.
    # A streaming answer keeps its connection until it ends, so DB_POOL_MAX also bounds the
    # answers one process writes at once (more wait up to DB_POOL_TIMEOUT for a connection).
    # DB_POOL_MAX=0 turns the pool off (a connection per request, kept CONN_MAX_AGE seconds:
    # for WSGI or an external pooler such as PgBouncer).
    DB_POOL_MAX = env.int("DB_POOL_MAX", default=40)
    if DB_POOL_MAX:
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": min(env.int("DB_POOL_MIN", default=1), DB_POOL_MAX),
            "max_size": DB_POOL_MAX,
            # a request waits this long for a free connection, then fails (PoolTimeout)
            "timeout": env.float("DB_POOL_TIMEOUT", default=10.0),
        }
    else:
        DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=0)
# A pooled or kept connection is checked before use: a restarted Postgres costs no request.
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "static"
MEDIA_ROOT = UPLOAD_DIR

# --- originals (uploaded files) ------------------------------------------------------------------
# "filesystem": under DATA_DIR/uploads (the embedded default). "s3": an S3-compatible bucket, so
# web processes and workers on other machines share the originals without a shared disk. Keys
# are the same names as under DATA_DIR/uploads (content-addressed), so a folder can be copied in.
# Every read goes through Django's storage API (document.file.open, default_storage).
STORAGE_BACKEND = (_set("STORAGE_BACKEND") or "filesystem").lower()
S3_BUCKET = _set("S3_BUCKET")
S3_ENDPOINT_URL = _set("S3_ENDPOINT_URL")  # empty: AWS itself; else MinIO, Ceph, R2, Garage...
S3_REGION = _set("S3_REGION")


def originals_storage(
    backend: str,
    *,
    bucket: str = "",
    endpoint_url: str = "",
    region: str = "",
    access_key: str = "",
    secret_key: str = "",
) -> dict:
    """STORAGES["default"] for STORAGE_BACKEND (tests switch a process to a bucket with it)."""
    if backend == "filesystem":
        return {"BACKEND": "django.core.files.storage.FileSystemStorage"}
    if backend != "s3":
        raise ImproperlyConfigured(
            f"STORAGE_BACKEND={backend!r}: expected 'filesystem' (default) or 's3'"
        )
    if not bucket:
        raise ImproperlyConfigured("STORAGE_BACKEND=s3 needs S3_BUCKET (the bucket's name)")
    return {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": bucket,
            "endpoint_url": endpoint_url or None,
            "region_name": region or None,
            # None: boto3's own chain (instance role, ~/.aws, AWS_PROFILE...)
            "access_key": access_key or None,
            "secret_key": secret_key or None,
            # Names are content hashes: the same name holds the same bytes, so overwriting is
            # harmless. Originals are private and never served by URL: the app streams them.
            "file_overwrite": True,
            "default_acl": None,
            # A read larger than this spools to a temporary file (the backend's default: memory).
            "max_memory_size": 5 * 1024 * 1024,
        },
    }


STORAGES = {
    "default": originals_storage(
        STORAGE_BACKEND,
        bucket=S3_BUCKET,
        endpoint_url=S3_ENDPOINT_URL,
        region=S3_REGION,
        access_key=_set("AWS_ACCESS_KEY_ID"),
        secret_key=_set("AWS_SECRET_ACCESS_KEY"),
    ),
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# --- uploads ----------------------------------------------------------------------------------
MAX_UPLOAD_MB = env.int("MAX_UPLOAD_MB", default=100)
DATA_UPLOAD_MAX_NUMBER_FILES = 500
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024  # larger uploads spool to a temporary file
# The first handler stops a file once it passes MAX_UPLOAD_MB, before the others store more of
# it; config/asgi.py bounds the request body itself (ingest/uploads.py).
FILE_UPLOAD_HANDLERS = [
    "ingest.uploads.UploadLimitHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]

# --- RAG components: swappable by dotted path, like CACHES --------------------------------------
QDRANT_URL = env.str("QDRANT_URL", default="")
QDRANT_API_KEY = env.str("QDRANT_API_KEY", default="")
QDRANT_COLLECTION = env.str("QDRANT_COLLECTION", default="chunks")
RAG_EMBEDDER = {
    "BACKEND": "rag.embedding.SentenceTransformerEmbedder",
    "OPTIONS": {
        "model_path": env.str("EMBEDDING_MODEL_PATH", default="") or None,
        "batch_size": env.int("EMBEDDING_BATCH_SIZE", default=32),
        "threads": env.int("EMBEDDING_THREADS", default=0) or None,
    },
}
RAG_VECTOR_STORE = (
    {
        "BACKEND": "rag.store.QdrantStore",
        "OPTIONS": {
            "url": QDRANT_URL,
            "path": None,
            "api_key": QDRANT_API_KEY or None,
            "collection": QDRANT_COLLECTION,
            # A Qdrant cluster: used when the app creates the collection (empty: server default).
            "shard_number": _set_int("QDRANT_SHARD_NUMBER"),
            "replication_factor": _set_int("QDRANT_REPLICATION_FACTOR"),
            "write_consistency_factor": _set_int("QDRANT_WRITE_CONSISTENCY_FACTOR"),
        },
    }
    if QDRANT_URL
    else {
        # The embedded default: Qdrant's engine in this process. A DATA_DIR from before it
        # (qdrant-client's local mode in DATA_DIR/qdrant) is copied in when the store first opens.
        "BACKEND": "rag.store.EdgeStore",
        "OPTIONS": {"path": str(DATA_DIR / "edge"), "migrate_from": str(DATA_DIR / "qdrant")},
    }
)
CHUNK_TOKENS = env.int("CHUNK_TOKENS", default=256)
CHUNK_OVERLAP = env.float("CHUNK_OVERLAP", default=0.15)
SEARCH_TOP_K = env.int("SEARCH_TOP_K", default=10)
# Hybrid retrieval (rag.retrieval.Retriever): the fusion was chosen on HaluEval-QA and CISI
# with one setting for both (bench/fusion.py, docs/benchmarks/fusion.json).
RAG_RETRIEVER = {
    "fusion": env.str("RETRIEVAL_FUSION", default="dbsf"),
    "pool_min": env.int("RETRIEVAL_POOL", default=100),
    "rrf_k": env.float("RETRIEVAL_RRF_K", default=2.0),
    "dense_weight": env.float("RETRIEVAL_DENSE_WEIGHT", default=1.0),
    "lexical_weight": env.float("RETRIEVAL_LEXICAL_WEIGHT", default=1.0),
    "dedup_threshold": env.float("RETRIEVAL_DEDUP_THRESHOLD", default=0.9) or None,
}
# The Snowball stemmer of the BM25 terms (rag.lexical), "none" for words as they are. The terms
# are stored with every passage: after a change, re-index (manage.py ingest --reindex).
BM25_LANGUAGE = env.str("BM25_LANGUAGE", default="english").strip().lower()
if BM25_LANGUAGE == "none":
    BM25_LANGUAGE = None
else:
    import Stemmer

    if BM25_LANGUAGE not in Stemmer.algorithms():
        raise ImproperlyConfigured(
            f"BM25_LANGUAGE={BM25_LANGUAGE!r} has no Snowball stemmer: use none or one of "
            + ", ".join(Stemmer.algorithms())
        )

# --- language models and answering -------------------------------------------------------------
DEEPSEEK_API_KEY = env.str("DEEPSEEK_API_KEY", default="")
DEEPSEEK_BASE_URL = _set("DEEPSEEK_BASE_URL") or "https://api.deepseek.com"
DEEPSEEK_MODEL = _set("DEEPSEEK_MODEL") or "deepseek-reasoner"
LLM_BASE_URL = env.str("LLM_BASE_URL", default="")
LLM_MODEL = env.str("LLM_MODEL", default="")
LLM_API_KEY = env.str("LLM_API_KEY", default="")
LLM_TIMEOUT = env.float("LLM_TIMEOUT", default=60.0)
# Per provider: a reasoning model thinks for a while before its first token, a local server not.
DEEPSEEK_TIMEOUT = env.float("DEEPSEEK_TIMEOUT", default=LLM_TIMEOUT)
LLM_SERVER_TIMEOUT = env.float("LLM_SERVER_TIMEOUT", default=LLM_TIMEOUT)
LOCAL_LLM_CACHE_DIR = _set("LOCAL_LLM_CACHE_DIR") or str(DATA_DIR / "models")
LOCAL_LLM_THREADS = env.int("LOCAL_LLM_THREADS", default=0) or None
# Load the offline model when the app starts instead of on the first question.
LOCAL_LLM_WARM_UP = env.bool("LOCAL_LLM_WARM_UP", default=True)
# The models users can answer with; the first is the default. Same shape as RAG_EMBEDDER.
LLMS = []
if DEEPSEEK_API_KEY:
    LLMS.append(
        {
            "BACKEND": "rag.llm.OpenAICompatibleLLM",
            "LABEL": f"DeepSeek ({DEEPSEEK_MODEL})",
            "RESIDENCY": "external",
            "REASONING": DEEPSEEK_MODEL == "deepseek-reasoner",
            "CONTEXT_TOKENS": 64_000,
            # USD per 1,000 tokens (cache miss), as published for deepseek-reasoner; override.
            "COST_IN_PER_1K": env.float("DEEPSEEK_COST_IN_PER_1K", default=0.00055),
            "COST_OUT_PER_1K": env.float("DEEPSEEK_COST_OUT_PER_1K", default=0.00219),
            "PINNED_VERSION": env.str("DEEPSEEK_PINNED_VERSION", default="") or None,
            "OPTIONS": {
                "id": "deepseek",
                "provider": "deepseek",
                "base_url": DEEPSEEK_BASE_URL,
                "api_key": DEEPSEEK_API_KEY,
                "model": DEEPSEEK_MODEL,
                "timeout": DEEPSEEK_TIMEOUT,
            },
        }
    )
if LLM_BASE_URL:
    LLMS.append(
        {
            "BACKEND": "rag.llm.OpenAICompatibleLLM",
            "LABEL": f"Local server ({LLM_MODEL or 'default model'})",
            "RESIDENCY": "internal",
            "PINNED_VERSION": env.str("LLM_PINNED_VERSION", default="") or None,
            "OPTIONS": {
                "id": "server",
                "base_url": LLM_BASE_URL,
                "api_key": LLM_API_KEY or "not-needed",
                "model": LLM_MODEL or "default",
                "timeout": LLM_SERVER_TIMEOUT,
            },
        }
    )
LLMS.append(
    {
        "BACKEND": "rag.local_llm.LocalLLM",
        "LABEL": "Offline model (SmolLM2-135M, on this machine)",
        "RESIDENCY": "internal",
        "CONTEXT_TOKENS": 2048,
        "OPTIONS": {"id": "local", "cache_dir": LOCAL_LLM_CACHE_DIR, "threads": LOCAL_LLM_THREADS},
    }
)
ANSWER_TOP_K = env.int("ANSWER_TOP_K", default=6)
ANSWER_MIN_RELEVANCE = env.float("ANSWER_MIN_RELEVANCE", default=0.25)
ANSWER_MAX_TOKENS = env.int("ANSWER_MAX_TOKENS", default=1024)
# The offline model's context is small and it decodes ~13 tokens/s: fewer, shorter sources.
LOCAL_ANSWER_TOP_K = env.int("LOCAL_ANSWER_TOP_K", default=3)
LOCAL_ANSWER_MAX_TOKENS = env.int("LOCAL_ANSWER_MAX_TOKENS", default=200)
LOCAL_SOURCE_CHARS = env.int("LOCAL_SOURCE_CHARS", default=600)
# An unverified offline answer is replaced by sentences quoted from the passages whose score for
# the question (rag.extractive.pick_sentences: rescaled cosine + rarity-weighted word overlap)
# reaches this; with none, nothing is shown as an answer (withheld). Chosen on 35 questions about
# three manuals that are no test set (Ubuntu Packaging Guide, ReportLab and Gri user guides) and
# 22 they do not cover, retrieved as the app does: at 0.7, 26 get the answering sentence quoted,
# 4 a sentence that does not answer, 5 nothing (4 of them had no answer among the passages
# found), and 1 of the 22 uncovered ones a quote (a chance word match). 0.6 quotes 2 more wrong
# sentences; 0.75 drops right ones.
EXTRACTIVE_MIN_SUPPORT = env.float("EXTRACTIVE_MIN_SUPPORT", default=0.7)
QUESTION_MAX_CHARS = env.int("QUESTION_MAX_CHARS", default=4000)
# `manage.py eval answers`: the model that judges faithfulness (an id of LLMS; empty: no judge).
EVAL_JUDGE_MODEL = env.str("EVAL_JUDGE_MODEL", default="")
# `manage.py eval --dataset cisi` and the retrieval gate: the CISI test collection's folder
# (CI puts a copy of shared/ beside the repository). Relative paths are from the repository.
CISI_DIR = (BASE_DIR / (_set("CISI_DIR") or "../shared/data/cisi")).resolve()
# Routing (rag.routing) and resilience (rag.resilience).
# Short factual questions go to an internal model first when one is worth asking (a server at
# LLM_BASE_URL; the 135M offline model is not), escalating to an external one if not grounded.
ROUTING_LOCAL_FIRST_MAX_WORDS = int(
    _set("ROUTING_LOCAL_FIRST_MAX_WORDS") or (12 if LLM_BASE_URL else 0)
)
ROUTING_ESCALATION = env.bool("ROUTING_ESCALATION", default=True)
# Serve a verified answer again for the same question (same readers, documents unchanged).
ANSWER_CACHE = env.bool("ANSWER_CACHE", default=True)
ANSWER_CACHE_MIN_SIMILARITY = env.float("ANSWER_CACHE_MIN_SIMILARITY", default=0.97)
# Replace e-mails, phone numbers, card numbers, IBANs... by placeholders before any external call.
PII_REDACTION = env.bool("PII_REDACTION", default=True)
ROUTING_FALLBACK = env.bool("ROUTING_FALLBACK", default=True)
LLM_RETRY_ATTEMPTS = env.int("LLM_RETRY_ATTEMPTS", default=3)
LLM_RETRY_BASE_DELAY = env.float("LLM_RETRY_BASE_DELAY", default=0.5)
LLM_RETRY_MAX_DELAY = env.float("LLM_RETRY_MAX_DELAY", default=8.0)
LLM_RETRY_MAX_WAIT = env.float("LLM_RETRY_MAX_WAIT", default=30.0)
LLM_BREAKER_FAILURES = env.int("LLM_BREAKER_FAILURES", default=5)
LLM_BREAKER_COOL_DOWN = env.float("LLM_BREAKER_COOL_DOWN", default=30.0)

# --- Celery -----------------------------------------------------------------------------------
# The embedded default needs no server: a broker in a folder under DATA_DIR, which the CLI can
# post to while the app's in-process worker consumes. Production sets a Redis URL.
# A host name keeps kombu from warning that none was given; the folder is all that counts.
CELERY_BROKER_URL = _set("CELERY_BROKER_URL") or "filesystem://localhost/"
# Soft: checked by the pipeline itself between pages and batches (so also in the embedded
# worker's thread and `ingest --sync`) and signalled by Celery in a prefork worker. Hard: only a
# prefork worker can enforce it, by killing the child process.
INGEST_SOFT_TIME_LIMIT = env.int("INGEST_SOFT_TIME_LIMIT", default=3600)
INGEST_TIME_LIMIT = env.int("INGEST_TIME_LIMIT", default=3660)
if INGEST_TIME_LIMIT <= INGEST_SOFT_TIME_LIMIT:
    raise ImproperlyConfigured(
        f"INGEST_TIME_LIMIT ({INGEST_TIME_LIMIT}) must be above INGEST_SOFT_TIME_LIMIT "
        f"({INGEST_SOFT_TIME_LIMIT}): past the soft limit the document is failed cleanly, "
        "past the hard one the worker process is killed"
    )
# A prefork worker's child is replaced after a task that left it above this resident size
# (parsing a huge document can leave the heap large); 0 turns it off.
INGEST_WORKER_MAX_MEMORY_MB = env.int("INGEST_WORKER_MAX_MEMORY_MB", default=2048)
INGEST_MAX_RETRIES = env.int("INGEST_MAX_RETRIES", default=5)
# A poison document (one that kills the worker: memory, a hard time limit) would otherwise be
# resumed at every start and redelivered to worker after worker, forever.
INGEST_MAX_ATTEMPTS = env.int("INGEST_MAX_ATTEMPTS", default=3)
# Bounds checked before a parser sees a file (rag.parsing.ParseLimits): a DOCX's inflated size,
# compression ratio and member count (zip bombs), a PDF's page count and what one of its streams
# may inflate to, an HTML or Markdown file's size, element nesting and element count.
PARSE_ZIP_MAX_MB = env.int("PARSE_ZIP_MAX_MB", default=200)
PARSE_ZIP_MAX_RATIO = env.float("PARSE_ZIP_MAX_RATIO", default=100.0)
PARSE_ZIP_MAX_MEMBERS = env.int("PARSE_ZIP_MAX_MEMBERS", default=10_000)
PARSE_PDF_MAX_PAGES = env.int("PARSE_PDF_MAX_PAGES", default=10_000)
PARSE_PDF_MAX_STREAM_MB = env.int("PARSE_PDF_MAX_STREAM_MB", default=75)
PARSE_HTML_MAX_MB = env.int("PARSE_HTML_MAX_MB", default=20)
PARSE_HTML_MAX_DEPTH = env.int("PARSE_HTML_MAX_DEPTH", default=512)
PARSE_HTML_MAX_ELEMENTS = env.int("PARSE_HTML_MAX_ELEMENTS", default=200_000)
CELERY_TASK_ACKS_LATE = True
# Every task (ingestion sets its own, the same) ends before the broker's visibility timeout.
CELERY_TASK_SOFT_TIME_LIMIT = INGEST_SOFT_TIME_LIMIT
CELERY_TASK_TIME_LIMIT = INGEST_TIME_LIMIT
CELERY_WORKER_MAX_MEMORY_PER_CHILD = INGEST_WORKER_MAX_MEMORY_MB * 1024 or None  # in KiB
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_BROKER_CONNECTION_TIMEOUT = 5
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.5,
    "interval_max": 1,
}
if CELERY_BROKER_URL.startswith("filesystem://"):
    _queue = DATA_DIR / "broker"
    _queue.mkdir(exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue),
        "data_folder_out": str(_queue),
        "control_folder": str(_queue / "control"),  # kombu's default is the current directory
        "store_processed": False,
    }
    CELERY_WORKER_ENABLE_REMOTE_CONTROL = False  # no broadcast in a folder broker
else:
    # acks_late + Redis: an unacknowledged task is redelivered after the visibility timeout,
    # which must outlast the longest task or a slow document would be processed twice at once.
    # INGEST_VISIBILITY_TIMEOUT overrides it (tests make it short to see a redelivery quickly).
    _visibility = _set_int("INGEST_VISIBILITY_TIMEOUT")
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": _visibility or INGEST_TIME_LIMIT + 600}
    if _visibility:  # kombu looks for expired messages every ~100 s: as often as a tenth of it
        CELERY_BROKER_TRANSPORT_OPTIONS |= {
            "unacked_restore_interval": max(1, _visibility // 10),
            "unacked_restore_throttle": 1,
        }
# The embedded default runs the worker inside the app process (Qdrant local mode allows one
# process); with a real broker, workers are separate processes (`celery -A config worker`).
EMBEDDED_WORKER = (
    env.bool("EMBEDDED_WORKER")
    if _set("EMBEDDED_WORKER")
    else CELERY_BROKER_URL.startswith("filesystem://")
)

# --- shared state between web processes -----------------------------------------------------------
# Django's cache holds what every web process must see alike: which conversation has an answer
# being written and the Stop button's flag (assistant/inflight.py). Default: Redis when the broker
# is Redis (production), else this process's memory (the embedded default serves from one process).
CACHES = {
    "default": env.cache_url_config(
        _set("CACHE_URL")
        or (CELERY_BROKER_URL if CELERY_BROKER_URL.startswith("redis") else "locmemcache://")
    )
}
CACHES["default"].setdefault("KEY_PREFIX", "rag")
# An answer's claim on its conversation expires this long after the answer last renewed it
# (it renews it while it works): what a crashed process's answer blocks the conversation for.
ANSWER_LOCK_SECONDS = env.int("ANSWER_LOCK_SECONDS", default=120)

# --- first admin (make run) ---------------------------------------------------------------------
ADMIN_USERNAME = env.str("ADMIN_USERNAME", default="admin")
ADMIN_PASSWORD = env.str("ADMIN_PASSWORD", default="")
ADMIN_EMAIL = env.str("ADMIN_EMAIL", default="")

# --- audit log -----------------------------------------------------------------------------------
# Days the redactable content of audit records (questions, answers, prompts) is kept before
# `manage.py audit retention` redacts it; records and the hash chain are kept regardless. 0: forever.
AUDIT_RETENTION_DAYS = env.int("AUDIT_RETENTION_DAYS", default=0)
# Production runs `celery -A config beat` (docker-compose) to apply retention daily; the embedded
# default applies it when the app starts.
CELERY_BEAT_SCHEDULE = {
    "audit-retention": {"task": "audit.apply_retention", "schedule": 24 * 3600.0},
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"httpx": {"level": "WARNING"}, "sentence_transformers": {"level": "WARNING"}},
}
