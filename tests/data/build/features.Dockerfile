# Every instruction of the classic builder on one image.
FROM test/busybox:1
ARG WHO=world
ENV GREETING="hello ${WHO}" EMPTY=
LABEL org.test.kind="build test" other=x
RUN echo "$GREETING" > /greeting && echo to-stdout && echo to-stderr >&2
WORKDIR /app
WORKDIR sub
COPY a.txt dir/ ./
USER nobody
EXPOSE 8080 53/udp
VOLUME /data
STOPSIGNAL SIGQUIT
HEALTHCHECK --interval=30s --retries=3 CMD true
SHELL ["/bin/sh", "-ec"]
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["cat /greeting; pwd; id -u; ls"]
