# The labfleet coordinator as a Proxmox VM (bpg/proxmox provider): a Debian 12 cloud image,
# booted with ../user-data.yaml, which installs the lab-coordinator package and runs
# 'lab-coordinator init' with the VM's address. See INSTALL.md ("The coordinator VM").
#
#   terraform init
#   terraform apply -var 'proxmox_endpoint=https://pve.example:8006/' \
#     -var 'deb_url=https://…/lab-coordinator_0.1.0-1_amd64.deb' -var 'address=10.0.0.5/24' \
#     -var 'gateway=10.0.0.1' -var "ssh_public_key=$(cat ~/.ssh/id_ed25519.pub)"
#
# The datastore named by snippets_datastore must allow the "Snippets" content type.

terraform {
  required_providers {
    proxmox = {
      source  = "bpg/proxmox"
      version = ">= 0.66"
    }
  }
}

variable "proxmox_endpoint" {
  description = "Proxmox VE API URL, e.g. https://pve.example:8006/ (credentials: PROXMOX_VE_API_TOKEN)"
  type        = string
}

variable "node_name" {
  description = "Proxmox node that runs the VM"
  type        = string
  default     = "pve"
}

variable "vm_name" {
  type    = string
  default = "lab-coordinator"
}

variable "deb_url" {
  description = "URL of lab-coordinator_<version>_amd64.deb that the VM downloads on first boot"
  type        = string
}

variable "address" {
  description = "The VM's IPv4 address with prefix length, e.g. 10.0.0.5/24"
  type        = string
}

variable "gateway" {
  description = "IPv4 default gateway"
  type        = string
}

variable "trust_domain" {
  description = "Trust domain of the coordinator's CA"
  type        = string
  default     = "lab.local"
}

variable "ssh_public_key" {
  description = "Public key for the image's default user (debian)"
  type        = string
}

variable "vm_datastore" {
  type    = string
  default = "local-lvm"
}

variable "snippets_datastore" {
  description = "Datastore for the cloud image and the user-data snippet"
  type        = string
  default     = "local"
}

variable "bridge" {
  type    = string
  default = "vmbr0"
}

provider "proxmox" {
  endpoint = var.proxmox_endpoint
}

locals {
  ip        = split("/", var.address)[0]
  advertise = "${local.ip}:7443"
  # ../user-data.yaml with its settings filled in
  user_data = replace(replace(replace(replace(
    file("${path.module}/../user-data.yaml"),
    "#ssh_authorized_keys: []", "ssh_authorized_keys: [${jsonencode(trimspace(var.ssh_public_key))}]"),
    "LAB_DEB_URL=\n", "LAB_DEB_URL=${var.deb_url}\n"),
    "LAB_ADVERTISE=\n", "LAB_ADVERTISE=${local.advertise}\n"),
  "LAB_TRUST_DOMAIN=lab.local\n", "LAB_TRUST_DOMAIN=${var.trust_domain}\n")
}

resource "proxmox_virtual_environment_download_file" "debian_cloud_image" {
  content_type = "iso"
  datastore_id = var.snippets_datastore
  node_name    = var.node_name
  url          = "https://cloud.debian.org/images/cloud/bookworm/latest/debian-12-genericcloud-amd64.qcow2"
  file_name    = "debian-12-genericcloud-amd64.img"
}

resource "proxmox_virtual_environment_file" "user_data" {
  content_type = "snippets"
  datastore_id = var.snippets_datastore
  node_name    = var.node_name

  source_raw {
    data      = local.user_data
    file_name = "${var.vm_name}-user-data.yaml"
  }
}

resource "proxmox_virtual_environment_vm" "coordinator" {
  name      = var.vm_name
  node_name = var.node_name
  tags      = ["labfleet"]

  cpu {
    cores = 2
    type  = "x86-64-v2-AES"
  }

  memory {
    dedicated = 1024
  }

  disk {
    datastore_id = var.vm_datastore
    file_id      = proxmox_virtual_environment_download_file.debian_cloud_image.id
    interface    = "virtio0"
    iothread     = true
    discard      = "on"
    size         = 16
  }

  network_device {
    bridge = var.bridge
  }

  serial_device {}

  initialization {
    datastore_id = var.vm_datastore
    ip_config {
      ipv4 {
        address = var.address
        gateway = var.gateway
      }
    }
    user_data_file_id = proxmox_virtual_environment_file.user_data.id
  }
}

output "coordinator" {
  description = "Address agents enroll to and operators dial"
  value       = local.advertise
}

output "admin_config" {
  description = "Where the first admin labctl config is, and how to fetch it"
  value       = "/var/lib/lab-coordinator/labctl.toml on ${local.ip}: ssh debian@${local.ip} sudo cat /var/lib/lab-coordinator/labctl.toml > ~/.config/labctl/config.toml"
}
