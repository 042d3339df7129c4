FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY tracelab ./tracelab
COPY labeling ./labeling
COPY routing ./routing
RUN pip install --no-cache-dir .
COPY . .
RUN useradd --create-home tracelab && mkdir -p /var/lib/tracelab && chown tracelab /var/lib/tracelab
USER tracelab
EXPOSE 8000
