# reachprobe: the volunteer's probe daemon in a container.
# Build: docker build -t reachprobe .   Run: docker run -d -v reachprobe-data:/data reachprobe
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    XDG_DATA_HOME=/data

WORKDIR /src
COPY pyproject.toml setup.py README.md requirements.lock ./
COPY probe ./probe
COPY measurements ./measurements
COPY config ./config
# The versions the tests ran with (requirements.lock), build backend included.
RUN PIP_CONSTRAINT=/src/requirements.lock pip install . && rm -rf /src

RUN useradd --system --create-home --home-dir /home/probe --uid 10001 probe \
    && mkdir -p /data && chown probe:probe /data
USER probe
WORKDIR /home/probe
VOLUME ["/data"]

CMD ["probe", "daemon"]
