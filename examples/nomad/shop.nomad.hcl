# Two task groups on one Postgres: the storefront (3 allocations) and the back office (2). Nomad runs
# a prestart task with sidecar = false once per allocation, to completion, before the group's main
# task starts (like a Kubernetes init container): five allocations start five migrate tasks at once.
# release-orchestrator makes one of them run the migrations; the others wait for its outcome and exit
# with it, and no app task starts before the schema is migrated (nor at all if it failed).
#
# Nomad gives a task no version of its job that changes only with the code, so the release is the
# image tag, set once in meta and used both for the image and as RELEASE_ID:
#   nomad job run -var release=1.4.2 shop.nomad.hcl
variable "release" {
  type = string
}

job "shop" {
  type = "service"

  meta {
    release = var.release
  }

  # An allocation whose prestart task still waits counts against healthy_deadline (default 5m): the
  # migrate tasks' --wait-timeout stays below it, so a waiting allocation fails with its own exit code
  # (75) first, and a long migration gets the time it needs.
  update {
    healthy_deadline  = "10m"
    progress_deadline = "15m"
  }

  group "web" {
    count = 3

    task "migrate" {
      lifecycle {
        hook    = "prestart"
        sidecar = false
      }
      driver = "docker"
      config {
        image   = "registry.example.com/shop:${NOMAD_META_release}"
        command = "npx"
        args    = ["--no-install", "release-orchestrator", "run", "--wait-timeout", "9m", "--", "npm", "run", "migrate"]
      }
      env {
        RELEASE_ID = "${NOMAD_META_release}"
      }
      template {
        data        = "DATABASE_URL={{ with nomadVar \"nomad/jobs/shop\" }}{{ .database_url }}{{ end }}"
        destination = "secrets/database.env"
        env         = true
      }
    }

    task "app" {
      driver = "docker"
      config {
        image   = "registry.example.com/shop:${NOMAD_META_release}"
        command = "npm"
        args    = ["start"]
      }
      template {
        data        = "DATABASE_URL={{ with nomadVar \"nomad/jobs/shop\" }}{{ .database_url }}{{ end }}"
        destination = "secrets/database.env"
        env         = true
      }
    }
  }

  group "admin" {
    count = 2

    task "migrate" {
      lifecycle {
        hook    = "prestart"
        sidecar = false
      }
      driver = "docker"
      config {
        image   = "registry.example.com/shop:${NOMAD_META_release}"
        command = "npx"
        args    = ["--no-install", "release-orchestrator", "run", "--wait-timeout", "9m", "--", "npm", "run", "migrate"]
      }
      env {
        RELEASE_ID = "${NOMAD_META_release}"
      }
      template {
        data        = "DATABASE_URL={{ with nomadVar \"nomad/jobs/shop\" }}{{ .database_url }}{{ end }}"
        destination = "secrets/database.env"
        env         = true
      }
    }

    task "app" {
      driver = "docker"
      config {
        image   = "registry.example.com/shop:${NOMAD_META_release}"
        command = "npm"
        args    = ["run", "start:admin"]
      }
      template {
        data        = "DATABASE_URL={{ with nomadVar \"nomad/jobs/shop\" }}{{ .database_url }}{{ end }}"
        destination = "secrets/database.env"
        env         = true
      }
    }
  }
}
