# TokenHub web, worker and beat image.
FROM python:3.13-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .
# Hashed, compressed static files for whitenoise; needs no secret.
RUN python manage.py collectstatic --noinput -v0

RUN useradd --system --home /app tokenhub && chown -R tokenhub /app
USER tokenhub
EXPOSE 8000
CMD ["gunicorn", "-c", "gunicorn.conf.py", "tokenhub.asgi:application"]
