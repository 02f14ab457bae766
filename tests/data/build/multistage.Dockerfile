ARG BASE=test/busybox:1
FROM ${BASE} AS build
RUN mkdir /out && echo built > /out/result \
    && echo "app:x:1234:1234::/:/bin/sh" >> /etc/passwd \
    && echo "app:x:1234:" >> /etc/group
FROM ${BASE} AS other
RUN echo other > /other
FROM ${BASE}
COPY --from=build /out/result /final/
COPY --from=1 /other /final/
COPY --from=build /etc/passwd /etc/group /etc/
COPY --chown=app:app data/ /owned/
COPY --from=test/busybox:1 /bin/busybox /copied-busybox
